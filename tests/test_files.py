"""Atomic writes: a write that fails its read-back, or fails midway, changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from geolip import _files


def _refuse(path: Path) -> None:
    raise ValueError(f"read-back refused {path.name}")


def test_a_file_that_fails_its_read_back_is_never_published(tmp_path: Path) -> None:
    target = tmp_path / "head.safetensors"
    target.write_bytes(b"old")
    with pytest.raises(ValueError, match="read-back refused"):
        _files.atomic_write(target, b"new", verify=_refuse)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["head.safetensors"]


def test_the_read_back_sees_the_complete_bytes_under_the_target_suffix(tmp_path: Path) -> None:
    seen: dict[str, bytes] = {}

    def record(path: Path) -> None:
        seen[path.suffix] = path.read_bytes()

    _files.atomic_write(tmp_path / "a.safetensors", b"payload", verify=record)
    assert seen == {".safetensors": b"payload"}
    assert (tmp_path / "a.safetensors").read_bytes() == b"payload"


def test_a_folder_that_fails_its_read_back_leaves_the_old_folder(tmp_path: Path) -> None:
    target = tmp_path / "ckpt"
    _files.write_folder(target, {"config.json": b"{}", "model.safetensors": b"1"})
    with pytest.raises(ValueError):
        _files.write_folder(target, {"config.json": b"[]"}, verify=_refuse)
    assert {p.name: p.read_bytes() for p in target.iterdir()} == {
        "config.json": b"{}",
        "model.safetensors": b"1",
    }
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]


def test_a_failed_final_rename_rolls_the_old_folder_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "run"
    _files.write_folder(target, {"a": b"old"})
    real_rename = _files.os.rename

    def rename(src: str | Path, dst: str | Path) -> None:
        if Path(src).name.startswith(".run.tmp-"):
            raise OSError("rename failed (simulated)")
        real_rename(src, dst)

    monkeypatch.setattr(_files.os, "rename", rename)
    with pytest.raises(OSError, match="simulated"):
        _files.write_folder(target, {"a": b"new"})
    assert (target / "a").read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_cache_dir_has_one_order_of_precedence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("GEOLIP_HUB_CACHE", "GEOLIP_CACHE_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert _files.cache_dir("hub") == tmp_path / "home" / ".cache" / "geolip" / "hub"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _files.cache_dir("features") == tmp_path / "xdg" / "geolip" / "features"
    monkeypatch.setenv("GEOLIP_CACHE_DIR", str(tmp_path / "root"))
    assert _files.cache_dir("hub") == tmp_path / "root" / "hub"
    monkeypatch.setenv("GEOLIP_HUB_CACHE", str(tmp_path / "own"))
    assert _files.cache_dir("hub") == tmp_path / "own"
    assert _files.cache_dir("features") == tmp_path / "root" / "features"
