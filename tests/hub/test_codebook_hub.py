"""Codebooks to and from a Hub repo through the real huggingface_hub client, on loopback."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
import torch
from fake_hub import FakeHub
from huggingface_hub import HfApi, constants

from geolip import Codebook
from geolip.errors import (
    CodebookIntegrityError,
    CodebookVersionError,
    HubIntegrityError,
    HubNotFoundError,
    HubUnreachableError,
)
from geolip.hub import COMMIT_SHA, HubTarget, fetch_codebook

REPO = "alice/demo"


def codebook(seed: int = 1, k: int = 24, d: int = 4) -> Codebook:
    """A random codebook with per-axis stats and a stored quality report (small null)."""
    rows = torch.randn(k, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    stats = {"usage": torch.arange(k, dtype=torch.float32), "stability": torch.rand(k)}
    cb = Codebook.from_axes(rows, name=f"demo-{seed}", stats=stats)
    return cb.with_meta(quality=cb.assess(null_trials=12, seed=seed))


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def flip_data_byte(raw: bytes) -> bytes:
    """The last byte of the tensor data, changed: same size, same header, other axes."""
    return raw[:-1] + bytes([raw[-1] ^ 0x01])


def test_push_then_pull_gives_the_same_bytes_tensors_and_id(hub: FakeHub, tmp_path: Path) -> None:
    cb = codebook()
    pushed = cb.push_to_hub(REPO, endpoint=hub.endpoint)
    assert COMMIT_SHA.fullmatch(pushed.commit) and pushed.branch == "main"
    tree = {f.path: f for f in HfApi(endpoint=hub.endpoint).list_repo_tree(REPO)}
    assert set(tree) == {".gitattributes", "README.md", "codebook.json", "codebook.safetensors"}
    assert tree["codebook.safetensors"].lfs is not None and tree["codebook.json"].lfs is None

    fetched = fetch_codebook(HubTarget(REPO, endpoint=hub.endpoint))
    back = fetched.codebook
    assert back.id == cb.id and back.meta == cb.meta
    assert torch.equal(back.axes, cb.axes)
    assert back.stats.keys() == cb.stats.keys()
    assert all(torch.equal(back.stats[k], v) for k, v in cb.stats.items())
    assert fetched.snapshot.commit == pushed.commit and not fetched.snapshot.from_cache
    written = cb.save(tmp_path / "local")
    cached = fetched.snapshot.folder
    assert (cached / "codebook.safetensors").read_bytes() == written.read_bytes()
    assert (cached / "codebook.json").read_bytes() == (
        tmp_path / "local/codebook.json"
    ).read_bytes()

    # the same codebook again: the same bytes, so no new commit; the pull is a cache hit
    assert cb.push_to_hub(REPO, endpoint=hub.endpoint).commit == pushed.commit
    before = len(hub.requests)
    again = fetch_codebook(HubTarget(REPO, endpoint=hub.endpoint))
    assert again.snapshot.from_cache and again.codebook.id == cb.id
    assert [m for m, _ in hub.requests[before:]] == ["GET"]  # only resolving main to a commit


def test_revisions_pin_commits_and_branches(hub: FakeHub) -> None:
    a, b, c = codebook(1), codebook(2), codebook(3)
    first = a.push_to_hub(REPO, endpoint=hub.endpoint)
    second = b.push_to_hub(REPO, endpoint=hub.endpoint)
    assert first.commit != second.commit
    assert Codebook.from_hub(REPO, endpoint=hub.endpoint).id == b.id
    assert Codebook.from_hub(REPO, revision=first.commit, endpoint=hub.endpoint).id == a.id
    before = len(hub.requests)  # a cached commit is immutable: served without asking
    assert Codebook.from_hub(REPO, revision=first.commit, endpoint=hub.endpoint).id == a.id
    assert len(hub.requests) == before

    dev = c.push_to_hub(REPO, revision="dev", endpoint=hub.endpoint)
    refs = HfApi(endpoint=hub.endpoint).list_repo_refs(REPO)
    assert {r.name: r.target_commit for r in refs.branches} == {
        "main": second.commit,
        "dev": dev.commit,
    }
    assert Codebook.from_hub(REPO, revision="dev", endpoint=hub.endpoint).id == c.id
    assert Codebook.from_hub(REPO, endpoint=hub.endpoint).id == b.id
    with pytest.raises(ValueError, match="commit sha"):
        c.push_to_hub(REPO, revision=first.commit, endpoint=hub.endpoint)


def test_offline_mode_reads_the_cache_and_sends_nothing(
    hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    cb = codebook()
    pushed = cb.push_to_hub(REPO, endpoint=hub.endpoint)
    Codebook.from_hub(REPO, endpoint=hub.endpoint)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # the client reads it at import
    before = len(hub.requests)
    assert Codebook.from_hub(REPO, endpoint=hub.endpoint).id == cb.id
    assert Codebook.from_hub(REPO, revision=pushed.commit, endpoint=hub.endpoint).id == cb.id
    with pytest.raises(HubNotFoundError, match="offline"):
        Codebook.from_hub(REPO, revision="dev", endpoint=hub.endpoint)
    with pytest.raises(HubUnreachableError, match="offline"):
        cb.push_to_hub(REPO, endpoint=hub.endpoint)
    assert len(hub.requests) == before


def test_a_file_altered_on_the_server_is_refused_and_the_good_cache_kept(
    hub: FakeHub, tmp_path: Path
) -> None:
    cb = codebook()
    pushed = cb.push_to_hub(REPO, endpoint=hub.endpoint)
    good = tmp_path / "good-cache"
    folder = fetch_codebook(HubTarget(REPO, endpoint=hub.endpoint), cache_dir=good).snapshot.folder
    kept = {p: p.read_bytes() for p in files_under(good)}

    raw = (folder / "codebook.safetensors").read_bytes()
    hub.tamper(REPO, "codebook.safetensors", flip_data_byte(raw))  # advertised sha256 unchanged
    fresh = tmp_path / "fresh-cache"
    with pytest.raises(HubIntegrityError, match=r"codebook.safetensors.*sha256"):
        Codebook.from_hub(REPO, endpoint=hub.endpoint, cache_dir=fresh)
    assert files_under(fresh) == []

    hub.tamper(REPO, "codebook.safetensors", raw)
    hub.tamper(REPO, "codebook.json", b"{}\n")  # a regular file: checked by its git blob sha1
    with pytest.raises(HubIntegrityError, match=r"codebook.json.*git blob sha1"):
        Codebook.from_hub(REPO, endpoint=hub.endpoint, cache_dir=fresh)
    assert files_under(fresh) == []

    pinned = HubTarget(REPO, revision=pushed.commit, endpoint=hub.endpoint)
    back = fetch_codebook(pinned, cache_dir=good)
    assert back.snapshot.from_cache and back.codebook.id == cb.id
    assert {p: p.read_bytes() for p in files_under(good)} == kept


def test_an_artifact_altered_before_upload_fails_the_id_check_and_keeps_the_old_ref(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cb = codebook()
    first = cb.push_to_hub(REPO, endpoint=hub.endpoint)
    folder = fetch_codebook(HubTarget(REPO, endpoint=hub.endpoint)).snapshot.folder
    bad = flip_data_byte((folder / "codebook.safetensors").read_bytes())
    # a consistent server: the hashes it advertises are those of the altered bytes
    HfApi(endpoint=hub.endpoint).upload_file(
        path_or_fileobj=bad, path_in_repo="codebook.safetensors", repo_id=REPO
    )
    with pytest.raises(CodebookIntegrityError, match=f"{REPO}@.*/codebook.safetensors: stored id"):
        Codebook.from_hub(REPO, endpoint=hub.endpoint)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # main still means the last verified commit
    fetched = fetch_codebook(HubTarget(REPO, endpoint=hub.endpoint))
    assert fetched.snapshot.commit == first.commit and fetched.codebook.id == cb.id


def test_expected_id_and_a_changed_cache_are_refused(hub: FakeHub) -> None:
    cb, other = codebook(1), codebook(2)
    cb.push_to_hub(REPO, endpoint=hub.endpoint)
    with pytest.raises(HubIntegrityError, match="not the expected"):
        Codebook.from_hub(REPO, endpoint=hub.endpoint, expected_id=other.id)
    target = HubTarget(REPO, endpoint=hub.endpoint)
    folder = fetch_codebook(target, expected_id=cb.id).snapshot.folder
    (folder / "README.md").write_text("edited by hand\n")
    with pytest.raises(HubIntegrityError, match="changed or removed after it was verified"):
        Codebook.from_hub(REPO, endpoint=hub.endpoint)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_endpoint_fails_fast_and_writes_nothing(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    endpoint = f"http://127.0.0.1:{closed_port()}"
    start = time.monotonic()
    with pytest.raises(HubUnreachableError, match=r"no answer from http://127\.0\.0\.1"):
        Codebook.from_hub(REPO, endpoint=endpoint, cache_dir=cache)
    with pytest.raises(HubUnreachableError, match="HF_HUB_OFFLINE=1"):
        codebook().push_to_hub(REPO, endpoint=endpoint)
    assert time.monotonic() - start < 5
    assert files_under(cache) == []

    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        start = time.monotonic()
        with pytest.raises(HubUnreachableError, match="Timeout"):
            Codebook.from_hub(REPO, endpoint=endpoint, cache_dir=cache, timeout=0.3)
        with pytest.raises(HubUnreachableError, match="Timeout"):
            codebook().push_to_hub(REPO, endpoint=endpoint, timeout=0.3)
        assert time.monotonic() - start < 5
    assert files_under(cache) == []


def test_missing_repos_revisions_and_codebooks_say_what_is_missing(hub: FakeHub) -> None:
    with pytest.raises(HubNotFoundError, match="no such repo"):
        Codebook.from_hub("alice/nothing", endpoint=hub.endpoint)
    api = HfApi(endpoint=hub.endpoint)
    api.create_repo("alice/notes")
    api.upload_file(path_or_fileobj=b"hello\n", path_in_repo="notes.txt", repo_id="alice/notes")
    with pytest.raises(HubNotFoundError) as info:
        Codebook.from_hub("alice/notes", endpoint=hub.endpoint)
    message = str(info.value)
    assert "no codebook.safetensors" in message and "notes.txt" in message
    assert "holds no geolip codebook" in message
    with pytest.raises(HubNotFoundError, match="no such revision"):
        Codebook.from_hub("alice/notes", revision="v9", endpoint=hub.endpoint)


def test_a_newer_format_version_names_both_versions(hub: FakeHub, tmp_path: Path) -> None:
    raw = codebook().save(tmp_path / "cb").read_bytes()
    newer = raw.replace(b'"format_version":"1"', b'"format_version":"2"', 1)
    assert newer != raw and len(newer) == len(raw)
    api = HfApi(endpoint=hub.endpoint)
    api.create_repo(REPO)
    api.upload_file(path_or_fileobj=newer, path_in_repo="codebook.safetensors", repo_id=REPO)
    with pytest.raises(
        CodebookVersionError, match="format version 2; this geolip reads up to version 1"
    ):
        Codebook.from_hub(REPO, endpoint=hub.endpoint)
