"""Atomic file and folder writes, each read back before it is published; the cache directory.

Every writer in geolip goes through :func:`atomic_write` or :func:`write_folder`: the bytes are
written and synced under a temporary name beside the target, handed to a ``verify`` callable
(the same verifying reader that loads the artifact later), and only then renamed into place. A
reader therefore sees the old artifact or the new, complete and readable one, never a partial
one, and nothing is published that geolip itself would refuse to read.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

Verify = Callable[[Path], object]
"""Called with the temporary path once it is complete; raises to stop the publication."""


def cache_dir(kind: str) -> Path:
    """Where geolip caches ``kind`` (``"features"``, ``"hub"``): ``$GEOLIP_<KIND>_CACHE``, else
    ``$GEOLIP_CACHE_DIR/<kind>``, else ``$XDG_CACHE_HOME/geolip/<kind>``, else
    ``~/.cache/geolip/<kind>``. The one place that decides it."""
    own = os.environ.get(f"GEOLIP_{kind.upper()}_CACHE")
    if own:
        return Path(own).expanduser()
    root = os.environ.get("GEOLIP_CACHE_DIR")
    if root:
        return Path(root).expanduser() / kind
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "geolip" / kind


def atomic_write(path: str | Path, data: bytes, *, verify: Verify | None = None) -> Path:
    """Write ``data`` to ``path`` through a synced temporary file and a rename.

    Args:
        path: the file to write; its folder is created.
        data: the complete contents.
        verify: called with the temporary file before the rename; if it raises, the temporary
            file is removed, ``path`` is left as it was and the error propagates.

    Returns:
        ``path``.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(target, "tmp")
    try:
        _write_synced(tmp, data)
        if verify is not None:
            verify(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def write_folder(
    path: str | Path, files: Mapping[str, bytes], *, verify: Verify | None = None
) -> Path:
    """Write ``files`` (name → bytes) as the folder ``path``, all or nothing.

    The files are synced into a sibling temporary folder, ``verify`` reads that folder back,
    and the folder is renamed into place. An existing ``path`` is moved aside first and put
    back if the final rename fails (rollback), so a failure at any point leaves ``path`` as it
    was.

    Returns:
        ``path``.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(target, "tmp")
    try:
        tmp.mkdir()
        for name, data in files.items():
            _write_synced(tmp / name, data)
        if verify is not None:
            verify(tmp)
        _swap_into_place(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _sibling(target: Path, kind: str) -> Path:
    """A hidden sibling name that keeps ``target``'s suffix (readers dispatch on it)."""
    return target.with_name(f".{target.stem}.{kind}-{uuid.uuid4().hex[:8]}{target.suffix}")


def _swap_into_place(tmp: Path, target: Path) -> None:
    if not target.exists():
        os.rename(tmp, target)
        return
    old = _sibling(target, "old")
    os.rename(target, old)
    try:
        os.rename(tmp, target)
    except BaseException:
        os.rename(old, target)
        raise
    if old.is_dir():
        shutil.rmtree(old, ignore_errors=True)
    else:
        old.unlink(missing_ok=True)


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
