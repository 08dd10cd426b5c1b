"""Publish a producer's pretrained folder as a Hugging Face Hub repo and fetch it back, verified.

A producer repo holds ``config.json``, ``model.safetensors`` (see
``geolip/producers/pretrained.py``) and a generated ``README.md`` card (see ``cards.py``), which
records the sha256 of the config and of the weights, the same hashes every codebook extracted
from this model carries in ``meta.producer``, so a codebook traces back to its repo. Fetching
checks both files against the Hub's hashes and loads them (config parsed, weights fitting it
strictly) before anything is cached; the store, pinning and offline use are those of
``fetch.py`` and ``store.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from torch import nn

from geolip.errors import CheckpointError
from geolip.hub.cards import DEFAULT_LICENSE, producer_card
from geolip.hub.fetch import fetch_files
from geolip.hub.store import Snapshot
from geolip.hub.target import HubTarget
from geolip.hub.transport import PublishedCommit, publish_files
from geolip.producers.contract import ProducerModule
from geolip.producers.pretrained import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    pretrained_files,
    write_pretrained,
)

CARD_FILE = "README.md"
M = TypeVar("M", bound=nn.Module)


@dataclass(frozen=True)
class FetchedProducer(Generic[M]):
    """A verified producer and the commit it came from."""

    model: M
    snapshot: Snapshot


def push_pretrained(
    model: ProducerModule,
    target: HubTarget,
    *,
    private: bool = False,
    base_model: Sequence[str] = (),
    license: str = DEFAULT_LICENSE,
    commit_message: str | None = None,
) -> PublishedCommit:
    """Publish ``model`` in one commit on branch ``target.revision`` (default ``main``).

    Args:
        private: create the repo private (applies only when it is created).
        base_model: Hub repos this model was fine-tuned from, named in the card.

    Returns:
        The commit; its ``commit`` sha pins this exact upload.
    """
    files = pretrained_files(model.pretrained_config(), model.state_dict())
    files[CARD_FILE] = producer_card(
        model, repo_id=target.repo_id, base_model=base_model, license=license
    ).encode()
    message = commit_message or (
        f"geolip {type(model).__name__}: {sum(p.numel() for p in model.parameters()):,} parameters"
    )
    return publish_files(target, files, message=message, private=private)


def fetch_pretrained(
    target: HubTarget,
    load: Callable[[Path], M],
    *,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
) -> FetchedProducer[M]:
    """The producer of a Hub repo at ``target.revision`` (branch, tag or commit sha), read by
    ``load`` (a pretrained-folder reader such as ``SphereSolver.from_folder``) once both files
    match the Hub's hashes.

    Args:
        cache_dir: geolip's store (default ``geolip._files.cache_dir("hub")``).
        local_files_only: read geolip's cache only, as with HF_HUB_OFFLINE=1.

    Raises:
        HubUnreachableError, HubNotFoundError (no repo, revision, ``config.json`` or
        ``model.safetensors``), HubIntegrityError, and ``load``'s CheckpointError, located as
        ``REPO@COMMIT/FILE``.
    """

    def checked(folder: Path, commit: str) -> M:
        try:
            return load(folder)
        except CheckpointError as err:
            where = f"{target.repo_id}@{commit[:12]}/{err.path.name}"
            raise type(err)(err.problem, where) from err

    snapshot, model = fetch_files(
        target,
        checked,
        kind="model",
        required=(CONFIG_FILE, WEIGHTS_FILE),
        optional=(CARD_FILE,),
        cache_dir=cache_dir,
        local_files_only=local_files_only,
    )
    return FetchedProducer(model=model, snapshot=snapshot)


def download_pretrained(
    target: HubTarget,
    out: str | Path,
    load: Callable[[Path], M],
    *,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
) -> FetchedProducer[M]:
    """:func:`fetch_pretrained`, then the verified files, byte for byte, written to the folder
    ``out`` (atomically, see :func:`~geolip.producers.pretrained.write_pretrained`)."""
    fetched = fetch_pretrained(target, load, cache_dir=cache_dir, local_files_only=local_files_only)
    folder = fetched.snapshot.folder
    names = [n for n in (CONFIG_FILE, WEIGHTS_FILE, CARD_FILE) if (folder / n).is_file()]
    write_pretrained(out, {name: (folder / name).read_bytes() for name in names})
    return fetched
