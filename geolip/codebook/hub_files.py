"""Files to and from a Hugging Face Hub model repo, through the huggingface_hub client, verified.

Publishing sends in-memory files as one commit. Fetching resolves a revision to a commit,
downloads that commit's files into a temporary folder, checks each against the hash the Hub
advertises for it (sha256 for LFS files, the git blob sha1 for the others), lets the caller
verify the content (a codebook recomputes its id), and only then renames the folder into
geolip's store::

    <store>/models--OWNER--NAME/<kind>/snapshots/<commit>/   the files + .geolip-snapshot.json
    <store>/models--OWNER--NAME/<kind>/refs/<revision>       the commit a revision resolved to

The store is not the huggingface_hub cache because that cache re-points a snapshot at a new
blob when the server's bytes change, so a tampered file would replace a good cached copy. Here a
verified commit folder is never replaced, a ref moves only once its new commit is verified, and
commits are immutable, so a cached commit is served without asking the Hub. Every request that
can be bounded is (``timeout``); the client's write calls take no timeout, so a push first
sends one bounded request.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote

import httpx2
from huggingface_hub import CommitOperationAdd, HfApi, constants, hf_hub_download
from huggingface_hub.errors import (
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.hf_api import RepoSibling

from geolip._files import atomic_write
from geolip._version import __version__
from geolip.errors import HubError, HubIntegrityError, HubNotFoundError, HubUnreachableError

DEFAULT_TIMEOUT = 10.0
"""Seconds to wait for any answer of the Hub (huggingface_hub's own metadata default)."""
MANIFEST = ".geolip-snapshot.json"
COMMIT_SHA = re.compile(r"[0-9a-f]{40}")
_CHUNK = 1 << 20
T = TypeVar("T")


@dataclass(frozen=True)
class PublishedCommit:
    """Where a push landed; ``commit`` (40 hex) pins exactly these files with ``revision=``."""

    repo_id: str
    branch: str
    commit: str
    url: str


@dataclass(frozen=True)
class Snapshot:
    """Verified files of one commit in the store; ``revision`` is what was asked for."""

    repo_id: str
    revision: str
    commit: str
    folder: Path
    from_cache: bool


def hub_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """The store of verified snapshots: ``cache_dir``, else ``$GEOLIP_HUB_CACHE``, else
    ``$XDG_CACHE_HOME/geolip/hub`` (``~/.cache/geolip/hub``)."""
    if cache_dir is not None:
        return Path(cache_dir)
    if os.environ.get("GEOLIP_HUB_CACHE"):
        return Path(os.environ["GEOLIP_HUB_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "geolip" / "hub"


def offline_mode() -> bool:
    """HF_HUB_OFFLINE as set now (huggingface_hub itself reads it once, at import)."""
    flag = os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}
    return flag or constants.is_offline_mode()


def publish_files(
    repo_id: str,
    files: Mapping[str, bytes],
    *,
    message: str,
    revision: str | None = None,
    private: bool = False,
    token: str | None = None,
    endpoint: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> PublishedCommit:
    """Commit ``files`` (path in repo → bytes) to branch ``revision`` (default ``main``) of a model
    repo, creating the repo (``private`` only applies then) and the branch when missing. Files
    whose bytes are already on the branch are not sent again; when nothing changed no commit is
    made and the branch head is returned."""
    branch = revision or constants.DEFAULT_REVISION
    if COMMIT_SHA.fullmatch(branch):
        raise ValueError(f"revision {branch!r} is a commit sha; push to a branch name")
    if offline_mode():
        raise HubUnreachableError("offline mode (HF_HUB_OFFLINE) is on: nothing is pushed", repo_id)
    api = _api(endpoint, token)
    with hub_errors(api.endpoint, repo_id, branch):
        # the one bounded request; a repo not created yet (or not visible) is create_repo's job
        with suppress(RepositoryNotFoundError):
            api.model_info(repo_id, timeout=timeout)
        api.create_repo(repo_id, private=private, exist_ok=True)
        if branch != constants.DEFAULT_REVISION:
            api.create_branch(repo_id, branch=branch, exist_ok=True)
        operations = [
            CommitOperationAdd(path_in_repo=name, path_or_fileobj=data)
            for name, data in files.items()
        ]
        info = api.create_commit(repo_id, operations, commit_message=message, revision=branch)
    return PublishedCommit(repo_id=repo_id, branch=branch, commit=info.oid, url=info.commit_url)


def fetch_files(
    repo_id: str,
    load: Callable[[Path, str], T],
    *,
    kind: str,
    required: Sequence[str],
    optional: Sequence[str] = (),
    revision: str | None = None,
    endpoint: str | None = None,
    token: str | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
) -> tuple[Snapshot, T]:
    """Files of one commit, verified, from the store or the Hub; ``load(folder, commit)`` reads
    them and raises if their content is wrong.

    Args:
        kind: the store keeps one folder per kind (``"codebook"``, ``"model"``) and commit.
        required: files the repo must hold; optional: fetched when present.
        revision: branch, tag or commit sha (default ``main``).
        local_files_only: like HF_HUB_OFFLINE=1: read the store, ask nothing.

    Returns:
        The snapshot and what ``load`` returned. A fresh download is loaded from the temporary
        folder, before it enters the store, so nothing that fails verification is ever kept.

    Raises:
        HubUnreachableError, HubNotFoundError, HubIntegrityError, HubError, and whatever
        ``load`` raises.
    """
    rev = revision or constants.DEFAULT_REVISION
    store = _Store(hub_cache_dir(cache_dir), repo_id, kind)
    if local_files_only or offline_mode():
        commit = rev if COMMIT_SHA.fullmatch(rev) else store.read_ref(rev)
        if commit is None or not store.has(commit):
            raise HubNotFoundError(
                f"offline, and the geolip cache {store.root} holds no {kind} of this revision: "
                "fetch it once online (or point cache_dir / GEOLIP_HUB_CACHE at a cache)",
                repo_id,
                rev,
            )
        return store.load(rev, commit, load)
    if COMMIT_SHA.fullmatch(rev) and store.has(rev):
        return store.load(rev, rev, load)
    api = _api(endpoint, token)
    with hub_errors(api.endpoint, repo_id, rev):
        info = api.model_info(repo_id, revision=rev, files_metadata=True, timeout=timeout)
    commit = str(info.sha)
    if store.has(commit):
        result = store.load(rev, commit, load)
        store.write_ref(rev, commit)
        return result
    remote = {s.rfilename: s for s in info.siblings or []}
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
    with store.staging() as staging:
        files = staging / "files"
        files.mkdir()
        with hub_errors(api.endpoint, repo_id, rev):
            for name in names:
                path = hf_hub_download(
                    repo_id,
                    name,
                    revision=commit,
                    endpoint=api.endpoint,
                    token=token,
                    cache_dir=staging / "download",
                    etag_timeout=timeout,
                    library_name="geolip",
                    library_version=__version__,
                )
                blob = Path(path).resolve()
                _check_advertised_hash(blob, remote[name], repo_id, commit)
                os.replace(blob, files / name)
        _write_manifest(files, names, repo_id, commit)
        loaded = load(files, commit)
        folder = store.install(commit, files)
    store.write_ref(rev, commit)
    return Snapshot(repo_id, rev, commit, folder, from_cache=False), loaded


@contextmanager
def hub_errors(endpoint: str, repo_id: str, revision: str | None) -> Iterator[None]:
    """Turn the client's network and HTTP errors into geolip's typed Hub errors."""
    try:
        yield
    except (httpx2.TransportError, OfflineModeIsEnabled, LocalEntryNotFoundError) as err:
        cause = err.__cause__ or err
        raise HubUnreachableError(
            f"no answer from {endpoint} ({type(cause).__name__}: {cause}); check the endpoint "
            "and the network, or set HF_HUB_OFFLINE=1 to read the geolip cache",
            repo_id,
            revision,
        ) from err
    except RevisionNotFoundError as err:
        raise HubNotFoundError(f"{endpoint} knows no such revision", repo_id, revision) from err
    except RemoteEntryNotFoundError as err:
        raise HubNotFoundError(f"a file is missing: {_first_line(err)}", repo_id, revision) from err
    except RepositoryNotFoundError as err:
        raise HubNotFoundError(
            f"{endpoint} has no such repo (or it is private or gated, and no valid token was sent)",
            repo_id,
            revision,
        ) from err
    except HfHubHTTPError as err:
        raise HubError(f"{endpoint} refused: {_first_line(err)}", repo_id, revision) from err


def _first_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def _api(endpoint: str | None, token: str | None) -> HfApi:
    return HfApi(endpoint=endpoint, token=token, library_name="geolip", library_version=__version__)


def _digest(path: Path, h: hashlib._Hash) -> str:
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _check_advertised_hash(path: Path, sibling: RepoSibling, repo_id: str, commit: str) -> None:
    """The Hub's hash of a file: sha256 of the content for LFS files, else the git blob sha1
    (sha1 of ``b"blob <size>\\0"`` + content)."""
    if sibling.lfs is not None:
        algo, expected, found = "sha256", sibling.lfs.sha256, _digest(path, hashlib.sha256())
    elif sibling.blob_id is not None:
        git = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
        algo, expected, found = "git blob sha1", sibling.blob_id, _digest(path, git)
    else:
        raise HubIntegrityError(
            f"the Hub advertises no hash of {sibling.rfilename}, so it cannot be verified",
            repo_id,
            commit,
        )
    if found != expected:
        raise HubIntegrityError(
            f"{sibling.rfilename} arrived with {algo} {found[:16]}… but the Hub advertises "
            f"{expected[:16]}…: altered on the server or in transit; nothing was cached",
            repo_id,
            commit,
        )


def _write_manifest(folder: Path, names: Sequence[str], repo_id: str, commit: str) -> None:
    files = {name: _digest(folder / name, hashlib.sha256()) for name in names}
    doc = {"repo_id": repo_id, "commit": commit, "sha256": files}
    (folder / MANIFEST).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")


class _Store:
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
            if not path.is_file() or _digest(path, hashlib.sha256()) != sha:
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
