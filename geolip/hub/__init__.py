"""Codebooks and producers on a Hugging Face Hub: publish, fetch, pin and verify.

Every call names its repo with one :class:`HubTarget` (repo id, revision, endpoint, token,
timeout). Verified snapshots are kept in geolip's own store, ``geolip._files.cache_dir("hub")``
unless a ``cache_dir`` is passed. See ``docs/hub.md``.

Layers: ``geolip.hub`` imports ``geolip.codebook`` and ``geolip.producers``, never the reverse
at module level (``Codebook.push_to_hub`` and friends import it inside their bodies).
"""

from geolip.hub.cards import DEFAULT_LICENSE, codebook_card, producer_card
from geolip.hub.codebooks import FetchedCodebook, fetch_codebook, push_codebook
from geolip.hub.fetch import fetch_files
from geolip.hub.producers import (
    FetchedProducer,
    download_pretrained,
    fetch_pretrained,
    push_pretrained,
)
from geolip.hub.store import Snapshot, hub_cache_dir
from geolip.hub.target import COMMIT_SHA, DEFAULT_TIMEOUT, HubTarget
from geolip.hub.transport import PublishedCommit, offline_mode, publish_files

__all__ = [
    "COMMIT_SHA",
    "DEFAULT_LICENSE",
    "DEFAULT_TIMEOUT",
    "FetchedCodebook",
    "FetchedProducer",
    "HubTarget",
    "PublishedCommit",
    "Snapshot",
    "codebook_card",
    "download_pretrained",
    "fetch_codebook",
    "fetch_files",
    "fetch_pretrained",
    "hub_cache_dir",
    "offline_mode",
    "producer_card",
    "publish_files",
    "push_codebook",
    "push_pretrained",
]
