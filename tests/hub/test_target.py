"""HubTarget refuses malformed repos before any request; the store lives where the one cache
resolver says; geolip.codebook and geolip.producers never import geolip.hub at import time."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest
import torch
from fake_hub import FakeHub

from geolip import Codebook
from geolip.hub import DEFAULT_TIMEOUT, HubTarget, fetch_codebook, hub_cache_dir


@pytest.mark.parametrize(
    "repo_id",
    [
        "",
        "demo",
        "alice/",
        "/demo",
        "alice/demo/extra",
        "alice demo/x",
        "alice/de mo",
        "alice/demo-",
        "alice/.demo",
        "al--ice/demo",
        "alice/de..mo",
        "alice/démo",
        "alice/" + "x" * 97,
    ],
)
def test_a_malformed_repo_id_is_refused(repo_id: str) -> None:
    with pytest.raises(ValueError, match="is not OWNER/NAME"):
        HubTarget(repo_id)


def test_a_target_holds_its_fields_frozen_and_hides_the_token() -> None:
    target = HubTarget("alice/demo_1.v2", endpoint="http://127.0.0.1:9", token="hf_secret")
    assert (target.revision, target.timeout) == (None, DEFAULT_TIMEOUT)
    assert "hf_secret" not in repr(target) and "alice/demo_1.v2" in repr(target)
    with pytest.raises(FrozenInstanceError):
        target.repo_id = "bob/other"  # type: ignore[misc]
    assert not target.pinned and HubTarget("a/b", revision="f" * 40).pinned
    with pytest.raises(ValueError, match="timeout"):
        HubTarget("alice/demo", timeout=0)
    with pytest.raises(ValueError, match="revision"):
        HubTarget("alice/demo", revision="")


def test_the_methods_refuse_a_malformed_repo_id_before_any_request(hub: FakeHub) -> None:
    cb = Codebook.from_axes(torch.eye(3))
    with pytest.raises(ValueError, match="is not OWNER/NAME"):
        cb.push_to_hub("no-owner", endpoint=hub.endpoint)
    with pytest.raises(ValueError, match="is not OWNER/NAME"):
        Codebook.from_hub("alice/demo/extra", endpoint=hub.endpoint)
    assert hub.requests == []


def test_the_cache_dir_honours_geolip_hub_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GEOLIP_HUB_CACHE", str(tmp_path / "own"))
    monkeypatch.setenv("GEOLIP_CACHE_DIR", str(tmp_path / "all"))
    assert hub_cache_dir() == tmp_path / "own"
    assert hub_cache_dir(tmp_path / "explicit") == tmp_path / "explicit"
    monkeypatch.delenv("GEOLIP_HUB_CACHE")
    assert hub_cache_dir() == tmp_path / "all" / "hub"
    monkeypatch.delenv("GEOLIP_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hub_cache_dir() == tmp_path / "xdg" / "geolip" / "hub"


def test_a_fetch_lands_in_geolip_hub_cache(hub: FakeHub, hub_cache: Path) -> None:
    cb = Codebook.random(8, 3, seed=0)
    cb.push_to_hub("alice/demo", endpoint=hub.endpoint)
    fetched = fetch_codebook(HubTarget("alice/demo", endpoint=hub.endpoint))
    assert fetched.codebook.id == cb.id
    assert fetched.snapshot.folder.is_relative_to(hub_cache)
    assert (hub_cache / "models--alice--demo" / "codebook" / "refs" / "main").is_file()


@pytest.mark.slow
def test_codebook_and_producers_do_not_import_the_hub_at_module_level() -> None:
    code = (
        "import importlib, pkgutil, sys\n"
        "import geolip.codebook, geolip.producers\n"
        "for pkg in (geolip.codebook, geolip.producers):\n"
        "    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "        importlib.import_module(m.name)\n"
        "print(sorted(n for n in sys.modules if n.startswith('geolip.hub')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
