"""Publish a codebook as a Hugging Face Hub repo and fetch it back, verified.

A codebook repo holds ``codebook.safetensors``, ``codebook.json`` (the artifact, byte for byte as
:meth:`Codebook.save` writes it) and a generated ``README.md`` card (see ``cards.py``). Fetching
checks every file against the Hub's hash, then runs the full verified load (format version,
shapes, meta hash, recomputed id, unit canonical axes, sidecar) before anything is cached; see
``fetch.py`` and ``store.py`` for the store, pinning and offline use.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from geolip.codebook import io
from geolip.codebook.core import Codebook
from geolip.errors import CodebookError, HubIntegrityError
from geolip.hub.cards import DEFAULT_LICENSE, codebook_card
from geolip.hub.fetch import fetch_files
from geolip.hub.store import Snapshot
from geolip.hub.target import HubTarget
from geolip.hub.transport import PublishedCommit, publish_files

CARD_FILE = "README.md"
PUBLISH_NULL_SEED = 0x6875625F
"""Seed of the null drawn at publish time for a codebook that stores no quality report."""


@dataclass(frozen=True)
class FetchedCodebook:
    """A verified codebook and the commit it came from."""

    codebook: Codebook
    snapshot: Snapshot


def push_codebook(
    codebook: Codebook,
    target: HubTarget,
    *,
    private: bool = False,
    base_model: Sequence[str] = (),
    license: str = DEFAULT_LICENSE,
    commit_message: str | None = None,
    null_trials: int = 300,
) -> PublishedCommit:
    """Publish ``codebook`` in one commit on branch ``target.revision`` (default ``main``).

    Args:
        private: create the repo private (applies only when it is created).
        base_model: Hub repos of the lineage's parents (or of the producer, for an extracted
            codebook); the card names them with the relation that fits the lineage.
        null_trials: a codebook without a stored quality report is assessed for the card with
            this many null draws (a fixed seed, so the card is reproducible); the artifact
            itself is sent unchanged.

    Returns:
        The commit; its ``commit`` sha pins this exact upload.
    """
    quality, source = codebook.meta.quality, "stored in the artifact"
    if quality is None and codebook.size >= 2:
        quality = codebook.assess(null_trials=null_trials, seed=PUBLISH_NULL_SEED)
        source = f"computed at publish time, {null_trials} null draws"
    card = codebook_card(
        codebook,
        repo_id=target.repo_id,
        quality=quality,
        quality_source=source,
        base_model=base_model,
        license=license,
    )
    files = {
        io.TENSOR_FILE: io.serialize(codebook.axes, codebook.stats, codebook.meta, codebook.id),
        io.META_FILE: io.sidecar_json(codebook.meta, codebook.id).encode(),
        CARD_FILE: card.encode(),
    }
    message = commit_message or (
        f"geolip codebook {codebook.name}: K={codebook.size}, D={codebook.dim}, "
        f"id {codebook.id[:12]}"
    )
    return publish_files(target, files, message=message, private=private)


def fetch_codebook(
    target: HubTarget,
    *,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
    expected_id: str | None = None,
) -> FetchedCodebook:
    """The codebook of a Hub repo at ``target.revision`` (branch, tag or commit sha), verified.

    Args:
        cache_dir: geolip's store (default ``geolip._files.cache_dir("hub")``).
        local_files_only: read geolip's cache only, as with HF_HUB_OFFLINE=1.
        expected_id: refuse the codebook unless its recomputed id is this one: the only check
            that also holds against a repo whose owner published other axes on purpose.

    Raises:
        HubUnreachableError, HubNotFoundError (no repo, revision or ``codebook.safetensors``),
        HubIntegrityError (bytes differ from the Hub's hashes, or not ``expected_id``), and the
        codebook errors of :meth:`Codebook.load` (e.g. CodebookVersionError naming both format
        versions), located as ``REPO@COMMIT/FILE``.
    """
    repo_id = target.repo_id

    def load(folder: Path, commit: str) -> Codebook:
        try:
            cb = Codebook.load(folder)
        except CodebookError as err:
            name = err.path.name if err.path is not None else io.TENSOR_FILE
            raise type(err)(f"{repo_id}@{commit[:12]}/{name}: {err.problem}") from err
        if expected_id is not None and cb.id != expected_id:
            raise HubIntegrityError(
                f"the codebook's id is {cb.id[:12]}…, not the expected {expected_id[:12]}…",
                repo_id,
                commit,
            )
        return cb

    snapshot, cb = fetch_files(
        target,
        load,
        kind="codebook",
        required=(io.TENSOR_FILE,),
        optional=(io.META_FILE, CARD_FILE),
        cache_dir=cache_dir,
        local_files_only=local_files_only,
    )
    return FetchedCodebook(codebook=cb, snapshot=snapshot)
