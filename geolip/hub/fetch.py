"""One commit's files, verified, from geolip's store or else from the Hub.

A revision is resolved to a commit (one bounded request, skipped for a commit sha already in
the store: commits are immutable), the commit's files are downloaded into a temporary folder
beside the store and checked against the Hub's hashes, the caller's ``load`` verifies their
content (a codebook recomputes its id), and only then is the folder renamed into the store and
the revision's ref moved. Offline (HF_HUB_OFFLINE=1 or ``local_files_only``) only the store is
read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from huggingface_hub import constants
from huggingface_hub.hf_api import RepoSibling

from geolip.errors import HubNotFoundError
from geolip.hub.store import Snapshot, SnapshotStore, hub_cache_dir, write_manifest
from geolip.hub.target import COMMIT_SHA, HubTarget
from geolip.hub.transport import download_verified, offline_mode, remote_files

T = TypeVar("T")


def fetch_files(
    target: HubTarget,
    load: Callable[[Path, str], T],
    *,
    kind: str,
    required: Sequence[str],
    optional: Sequence[str] = (),
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
) -> tuple[Snapshot, T]:
    """Files of one commit of ``target``, verified, from the store or the Hub;
    ``load(folder, commit)`` reads them and raises if their content is wrong.

    Args:
        kind: the store keeps one folder per kind (``"codebook"``, ``"model"``) and commit.
        required: files the repo must hold; optional: fetched when present.
        cache_dir: the store (default :func:`geolip.hub.store.hub_cache_dir`).
        local_files_only: like HF_HUB_OFFLINE=1: read the store, ask nothing.

    Returns:
        The snapshot and what ``load`` returned. A fresh download is loaded from the temporary
        folder, before it enters the store, so nothing that fails verification is ever kept.

    Raises:
        HubUnreachableError, HubNotFoundError, HubIntegrityError, HubError, and whatever
        ``load`` raises.
    """
    rev = target.revision or constants.DEFAULT_REVISION
    store = SnapshotStore(hub_cache_dir(cache_dir), target.repo_id, kind)
    if local_files_only or offline_mode():
        return _from_store_offline(store, rev, kind, load)
    if target.pinned and store.has(rev):
        return store.load(rev, rev, load)
    commit, remote = remote_files(target, rev)
    if store.has(commit):
        result = store.load(rev, commit, load)
        store.write_ref(rev, commit)
        return result
    wanted = _files_to_fetch(remote, required, optional, kind, target.repo_id, rev, commit)
    with store.staging() as staging:
        files = download_verified(target, rev, commit, wanted, staging)
        write_manifest(files, [s.rfilename for s in wanted], target.repo_id, commit)
        loaded = load(files, commit)
        folder = store.install(commit, files)
    store.write_ref(rev, commit)
    return Snapshot(target.repo_id, rev, commit, folder, from_cache=False), loaded


def _from_store_offline(
    store: SnapshotStore, rev: str, kind: str, load: Callable[[Path, str], T]
) -> tuple[Snapshot, T]:
    """Offline: a commit sha is itself, a branch or tag the commit it last verified."""
    commit = rev if COMMIT_SHA.fullmatch(rev) else store.read_ref(rev)
    if commit is None or not store.has(commit):
        raise HubNotFoundError(
            f"offline, and the geolip cache {store.root} holds no {kind} of this revision: "
            "fetch it once online (or point cache_dir / GEOLIP_HUB_CACHE at a cache)",
            store.repo_id,
            rev,
        )
    return store.load(rev, commit, load)


def _files_to_fetch(
    remote: Mapping[str, RepoSibling],
    required: Sequence[str],
    optional: Sequence[str],
    kind: str,
    repo_id: str,
    rev: str,
    commit: str,
) -> list[RepoSibling]:
    """The required files (all of them, or HubNotFoundError listing what the commit holds),
    then the optional ones the commit has."""
    missing = [name for name in required if name not in remote]
    if missing:
        raise HubNotFoundError(
            f"commit {commit[:12]} has no {' and no '.join(missing)}, so it holds no geolip "
            f"{kind} (that needs {', '.join(required)}); it holds: "
            f"{', '.join(sorted(remote)) or 'no files'}",
            repo_id,
            rev,
        )
    names = [*required, *(name for name in optional if name in remote)]
    return [remote[name] for name in names]
