"""``geolip codebook push/pull`` and ``geolip model push/pull`` against the fake Hub."""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from fake_hub import FakeHub, serve_fake_hub

from geolip import Codebook
from geolip.cli import output
from geolip.cli.app import main
from geolip.producers.sphere_solver import SphereSolver, SphereSolverConfig


@pytest.fixture(autouse=True)
def hub_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """This test's Hub store (``GEOLIP_HUB_CACHE``): never the real ``~/.cache/geolip/hub``."""
    store = tmp_path / "geolip-cache"
    monkeypatch.setenv("GEOLIP_HUB_CACHE", str(store))
    return store


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, hub_cache: Path) -> Iterator[FakeHub]:
    with serve_fake_hub(monkeypatch, hub_cache) as running:
        yield running


def run(args: list[str], capsys, monkeypatch) -> tuple[int, dict]:
    """The console entry point in-process with --json: (exit code, the one JSON document)."""
    monkeypatch.setattr(sys, "argv", ["geolip", *args, "--json"])
    output.set_json_mode(False)
    with pytest.raises(SystemExit) as info:
        main()
    return info.value.code, json.loads(capsys.readouterr().out)


def test_codebook_push_then_pull_reports_repo_commit_and_id(
    hub: FakeHub, tmp_path: Path, capsys, monkeypatch
) -> None:
    src = tmp_path / "rnd"
    code, made = run(
        ["codebook", "random", "--k", "16", "--d", "4", "--null-trials", "10", "--out", str(src)],
        capsys,
        monkeypatch,
    )
    assert code == 0
    base = ["--endpoint", hub.endpoint]
    code, pushed = run(["codebook", "push", str(src), "alice/rnd", *base], capsys, monkeypatch)
    assert code == 0
    assert pushed["repo_id"] == "alice/rnd" and pushed["codebook_id"] == made["id"]
    assert len(pushed["revision"]) == 40 and pushed["branch"] == "main"

    out = tmp_path / "pulled"
    pull = ["codebook", "pull", "alice/rnd", "--out", str(out), *base]
    code, pulled = run([*pull, "--revision", pushed["revision"]], capsys, monkeypatch)
    assert code == 0
    assert (pulled["repo_id"], pulled["revision"], pulled["codebook_id"]) == (
        "alice/rnd",
        pushed["revision"],
        made["id"],
    )
    for name in ("codebook.safetensors", "codebook.json"):
        assert (out / name).read_bytes() == (src / name).read_bytes()

    code, err = run([*pull, "--revision", pushed["revision"]], capsys, monkeypatch)
    assert code == 2 and "--force" in err["error"]["message"]  # never overwritten silently
    code, err = run([*pull, "--expect-id", "0" * 64, "--force"], capsys, monkeypatch)
    assert code == 3 and err["error"]["type"] == "HubIntegrityError"
    code, err = run(
        ["codebook", "pull", "alice/none", "--out", str(out), "--force", *base],
        capsys,
        monkeypatch,
    )
    assert code == 1 and err["error"]["type"] == "HubNotFoundError"
    for name in ("codebook.safetensors", "codebook.json"):  # failed pulls left it as it was
        assert (out / name).read_bytes() == (src / name).read_bytes()


def test_model_push_then_pull_writes_the_verified_files(
    hub: FakeHub, tmp_path: Path, capsys, monkeypatch
) -> None:
    torch.manual_seed(0)
    config = SphereSolverConfig(V=4, D=3, patch_size=2, hidden=8, depth=0, n_cross=0)
    folder = SphereSolver(config).save_pretrained(tmp_path / "model")
    base = ["--endpoint", hub.endpoint]
    code, pushed = run(["model", "push", str(folder), "alice/m", *base], capsys, monkeypatch)
    assert code == 0 and pushed["model_class"] == "SphereSolver"
    out = tmp_path / "pulled"
    code, pulled = run(["model", "pull", "alice/m", "--out", str(out), *base], capsys, monkeypatch)
    assert code == 0
    assert pulled["revision"] == pushed["revision"]
    assert pulled["weights_sha256"] == pushed["weights_sha256"]
    for name in ("config.json", "model.safetensors"):
        assert (out / name).read_bytes() == (folder / name).read_bytes()
    assert (out / "README.md").is_file()


def test_an_unreachable_endpoint_exits_1_with_a_clear_message(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    Codebook.from_axes(torch.eye(3)).save(tmp_path / "cb")
    endpoint = f"http://127.0.0.1:{port}"
    code, err = run(
        ["codebook", "push", str(tmp_path / "cb"), "alice/x", "--endpoint", endpoint],
        capsys,
        monkeypatch,
    )
    assert code == 1 and err["error"]["type"] == "HubUnreachableError"
    assert f"no answer from {endpoint}" in err["error"]["message"]
