"""Which Hub repo, at which revision, on which Hub, with which credentials: one value.

Every Hub call of geolip takes a :class:`HubTarget` instead of re-listing the same five
keywords; the CLI and the ``push_to_hub`` / ``from_hub`` / ``from_pretrained`` methods build one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

DEFAULT_TIMEOUT = 10.0
"""Seconds to wait for any answer of the Hub (huggingface_hub's own metadata default)."""
COMMIT_SHA = re.compile(r"[0-9a-f]{40}")
"""A full commit sha: the only revision that cannot move."""
_PART = r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?"
REPO_ID = re.compile(rf"(?!.*(?:--|\.\.))({_PART})/({_PART})")
"""``OWNER/NAME``: the Hub's characters (letters, digits, ``_ . -``), at most 96 each, neither
starting nor ending with ``.`` or ``-``, with no ``--`` or ``..`` anywhere."""


@dataclass(frozen=True)
class HubTarget:
    """A model repo on a Hugging Face Hub and how to reach it.

    Attributes:
        repo_id: ``OWNER/NAME``; anything else is refused here, before any request.
        revision: branch, tag or commit sha (``None``: ``main``). A push needs a branch.
        endpoint: the Hub's base URL (``None``: huggingface_hub's default, read from
            ``HF_ENDPOINT`` once, at its import).
        token: access token (``None``: ``HF_TOKEN`` or the saved login); never shown in repr.
        timeout: seconds to wait for any answer of the Hub.

    Raises:
        ValueError: a malformed ``repo_id``, an empty ``revision`` or a timeout that is not
            positive.
    """

    repo_id: str
    revision: str | None = None
    endpoint: str | None = None
    token: str | None = field(default=None, repr=False)
    timeout: float = DEFAULT_TIMEOUT

    def __post_init__(self) -> None:
        if not isinstance(self.repo_id, str) or not REPO_ID.fullmatch(self.repo_id):
            raise ValueError(
                f"repo id {self.repo_id!r} is not OWNER/NAME (letters, digits, '_', '.', '-'; "
                "no '--' or '..'; not starting or ending with '.' or '-')"
            )
        if self.revision is not None and not self.revision.strip():
            raise ValueError("revision is empty; pass None for main")
        if not self.timeout > 0:
            raise ValueError(f"timeout must be positive seconds, got {self.timeout!r}")

    @property
    def pinned(self) -> bool:
        """Whether ``revision`` is a commit sha, which no push can move."""
        return self.revision is not None and COMMIT_SHA.fullmatch(self.revision) is not None
