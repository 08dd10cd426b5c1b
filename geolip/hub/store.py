"""geolip's store of verified Hub snapshots, one folder per repo, kind and commit::

    <store>/models--OWNER--NAME/<kind>/snapshots/<commit>/   the files + .geolip-snapshot.json
    <store>/models--OWNER--NAME/<kind>/refs/<revision>       the commit a revision resolved to

It is not the huggingface_hub cache because that cache re-points a snapshot at a new blob when
the server's bytes change, so a tampered file would replace a good cached copy. Here a verified
commit folder is never replaced, a ref moves only once its new commit is verified, and every read
re-hashes the files against the sha256s recorded on arrival (``.geolip-snapshot.json``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote

from geolip._files import atomic_write, cache_dir
from geolip.errors import HubIntegrityError

MANIFEST = ".geolip-snapshot.json"
_CHUNK = 1 << 20
T = TypeVar("T")


@dataclass(frozen=True)
class Snapshot:
    """Verified files of one commit in the store; ``revision`` is what was asked for."""

    repo_id: str
    revision: str
    commit: str
    folder: Path
    from_cache: bool


def hub_cache_dir(explicit: str | Path | None = None) -> Path:
    """The store's root: ``explicit``, else :func:`geolip._files.cache_dir` ``("hub")``
    (``$GEOLIP_HUB_CACHE``, ``$GEOLIP_CACHE_DIR/hub``, ``$XDG_CACHE_HOME/geolip/hub``,
    ``~/.cache/geolip/hub``)."""
    return Path(explicit) if explicit is not None else cache_dir("hub")


def digest(path: Path, h: hashlib._Hash) -> str:
    """Hex digest of the file at ``path`` under the hash object ``h``, read in 1 MiB chunks."""
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def write_manifest(folder: Path, names: Sequence[str], repo_id: str, commit: str) -> None:
    """Record the sha256 of each of ``names`` in ``folder``, for every later read to check."""
    files = {name: digest(folder / name, hashlib.sha256()) for name in names}
    doc = {"repo_id": repo_id, "commit": commit, "sha256": files}
    (folder / MANIFEST).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")


class SnapshotStore:
    """One repo's verified snapshots of one kind, and the refs that point at them."""

    def __init__(self, root: Path, repo_id: str, kind: str) -> None:
        self.root = root
        self.repo_id = repo_id
        self.base = root / f"models--{repo_id.replace('/', '--')}" / kind

    def snapshot(self, commit: str) -> Path:
        return self.base / "snapshots" / commit

    def has(self, commit: str) -> bool:
        return (self.snapshot(commit) / MANIFEST).is_file()

    def read_ref(self, revision: str) -> str | None:
        ref = self.base / "refs" / quote(revision, safe="")
        return ref.read_text().strip() if ref.is_file() else None

    def write_ref(self, revision: str, commit: str) -> None:
        if revision != commit:
            ref = self.base / "refs" / quote(revision, safe="")
            ref.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(ref, commit.encode())

    def load(
        self, revision: str, commit: str, load: Callable[[Path, str], T]
    ) -> tuple[Snapshot, T]:
        """A cached snapshot, after checking every file against the sha256 recorded on arrival."""
        folder = self.snapshot(commit)
        recorded = json.loads((folder / MANIFEST).read_text())["sha256"]
        for name, sha in recorded.items():
            path = folder / name
            if not path.is_file() or digest(path, hashlib.sha256()) != sha:
                raise HubIntegrityError(
                    f"the cached {path} was changed or removed after it was verified; "
                    f"delete {folder} and fetch again",
                    self.repo_id,
                    revision,
                )
        snapshot = Snapshot(self.repo_id, revision, commit, folder, from_cache=True)
        return snapshot, load(folder, commit)

    @contextmanager
    def staging(self) -> Iterator[Path]:
        """A temporary folder beside the snapshots (same file system, so install is a rename),
        removed on exit whatever happens."""
        self.base.mkdir(parents=True, exist_ok=True)
        tmp = self.base / f".staging-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            yield tmp
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def install(self, commit: str, folder: Path) -> Path:
        """Rename a verified folder into place; a commit already installed is kept as it is."""
        target = self.snapshot(commit)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(folder, target)
        except OSError:
            if not self.has(commit):  # not a concurrent fetch of the same commit: a stray folder
                raise HubIntegrityError(
                    f"{target} exists but is not a verified snapshot; delete it and fetch again",
                    self.repo_id,
                    commit,
                ) from None
        return target
