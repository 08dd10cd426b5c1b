"""Talking to a Hugging Face Hub through the huggingface_hub client: one commit up, a commit's
file list and its files down, each file checked against the hash the Hub advertises for it
(sha256 for LFS files, the git blob sha1 for the others), and the client's errors mapped to
geolip's typed Hub errors.

Every request that can be bounded is (``HubTarget.timeout``); the client's write calls take no
timeout, so a push first sends one bounded request.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

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

from geolip._version import __version__
from geolip.errors import HubError, HubIntegrityError, HubNotFoundError, HubUnreachableError
from geolip.hub.store import digest
from geolip.hub.target import HubTarget


@dataclass(frozen=True)
class PublishedCommit:
    """Where a push landed; ``commit`` (40 hex) pins exactly these files with ``revision=``."""

    repo_id: str
    branch: str
    commit: str
    url: str


def offline_mode() -> bool:
    """HF_HUB_OFFLINE as set now (huggingface_hub itself reads it once, at import)."""
    flag = os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}
    return flag or constants.is_offline_mode()


def publish_files(
    target: HubTarget, files: Mapping[str, bytes], *, message: str, private: bool = False
) -> PublishedCommit:
    """Commit ``files`` (path in repo → bytes) to branch ``target.revision`` (default ``main``)
    of a model repo, creating the repo (``private`` only applies then) and the branch when
    missing. Files whose bytes are already on the branch are not sent again; when nothing
    changed no commit is made and the branch head is returned."""
    repo_id, branch = target.repo_id, target.revision or constants.DEFAULT_REVISION
    if target.pinned:
        raise ValueError(f"revision {branch!r} is a commit sha; push to a branch name")
    if offline_mode():
        raise HubUnreachableError("offline mode (HF_HUB_OFFLINE) is on: nothing is pushed", repo_id)
    api = _api(target)
    with hub_errors(api.endpoint, repo_id, branch):
        # the one bounded request; a repo not created yet (or not visible) is create_repo's job
        with suppress(RepositoryNotFoundError):
            api.model_info(repo_id, timeout=target.timeout)
        api.create_repo(repo_id, private=private, exist_ok=True)
        if branch != constants.DEFAULT_REVISION:
            api.create_branch(repo_id, branch=branch, exist_ok=True)
        operations = [
            CommitOperationAdd(path_in_repo=name, path_or_fileobj=data)
            for name, data in files.items()
        ]
        info = api.create_commit(repo_id, operations, commit_message=message, revision=branch)
    return PublishedCommit(repo_id=repo_id, branch=branch, commit=info.oid, url=info.commit_url)


def remote_files(target: HubTarget, revision: str) -> tuple[str, dict[str, RepoSibling]]:
    """The commit ``revision`` resolves to now, and its files (name → what the Hub says of
    them, hashes included): one request."""
    api = _api(target)
    with hub_errors(api.endpoint, target.repo_id, revision):
        info = api.model_info(
            target.repo_id, revision=revision, files_metadata=True, timeout=target.timeout
        )
    return str(info.sha), {s.rfilename: s for s in info.siblings or []}


def download_verified(
    target: HubTarget,
    revision: str,
    commit: str,
    files: Sequence[RepoSibling],
    staging: Path,
) -> Path:
    """Download ``files`` of ``commit`` into ``staging/files`` (returned), each checked against
    the hash the Hub advertises for it; ``revision`` is what was asked, for the errors.

    Raises:
        HubIntegrityError: a file's bytes differ from the advertised hash, or none is advertised.
    """
    api = _api(target)
    folder = staging / "files"
    folder.mkdir()
    with hub_errors(api.endpoint, target.repo_id, revision):
        for sibling in files:
            path = hf_hub_download(
                target.repo_id,
                sibling.rfilename,
                revision=commit,
                endpoint=api.endpoint,
                token=target.token,
                cache_dir=staging / "download",
                etag_timeout=target.timeout,
                library_name="geolip",
                library_version=__version__,
            )
            blob = Path(path).resolve()
            _check_advertised_hash(blob, sibling, target.repo_id, commit)
            os.replace(blob, folder / sibling.rfilename)
    return folder


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


def _api(target: HubTarget) -> HfApi:
    return HfApi(
        endpoint=target.endpoint,
        token=target.token,
        library_name="geolip",
        library_version=__version__,
    )


def _check_advertised_hash(path: Path, sibling: RepoSibling, repo_id: str, commit: str) -> None:
    """The Hub's hash of a file: sha256 of the content for LFS files, else the git blob sha1
    (sha1 of ``b"blob <size>\\0"`` + content)."""
    if sibling.lfs is not None:
        algo, expected, found = "sha256", sibling.lfs.sha256, digest(path, hashlib.sha256())
    elif sibling.blob_id is not None:
        git = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
        algo, expected, found = "git blob sha1", sibling.blob_id, digest(path, git)
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
