"""Publish a producer's pretrained folder as a Hugging Face Hub repo and fetch it back, verified.

A producer repo holds ``config.json``, ``model.safetensors`` (see ``pretrained.py``) and a
generated ``README.md`` card. The card records the sha256 of the config and of the weights as
:func:`geolip.producers.extract.producer_info` computes them, the same hashes every codebook
extracted from this model carries in ``meta.producer``, so a codebook traces back to its repo.
Fetching checks both files against the Hub's hashes and loads them (config parsed, weights fitting
it strictly) before anything is cached; the store, pinning and offline use are those of
``geolip.codebook.hub_files``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from torch import nn

from geolip.codebook.card import DEFAULT_LICENSE, front_matter
from geolip.codebook.hub_files import (
    DEFAULT_TIMEOUT,
    PublishedCommit,
    Snapshot,
    fetch_files,
    publish_files,
)
from geolip.errors import CheckpointError
from geolip.producers.extract import producer_info
from geolip.producers.pretrained import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    PretrainedModule,
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
    model: PretrainedModule,
    repo_id: str,
    *,
    revision: str | None = None,
    private: bool = False,
    token: str | None = None,
    endpoint: str | None = None,
    base_model: Sequence[str] = (),
    license: str = DEFAULT_LICENSE,
    commit_message: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> PublishedCommit:
    """Publish ``model`` in one commit on branch ``revision`` (default ``main``).

    Args:
        base_model: Hub repos this model was fine-tuned from, named in the card.
        endpoint: the Hub to talk to; pass it explicitly (huggingface_hub reads HF_ENDPOINT
            only at import).

    Returns:
        The commit; its ``commit`` sha pins this exact upload.
    """
    files = pretrained_files(model.pretrained_config(), model.state_dict())
    files[CARD_FILE] = producer_card(
        model, repo_id=repo_id, base_model=base_model, license=license
    ).encode()
    message = commit_message or (
        f"geolip {type(model).__name__}: {sum(p.numel() for p in model.parameters()):,} parameters"
    )
    return publish_files(
        repo_id,
        files,
        message=message,
        revision=revision,
        private=private,
        token=token,
        endpoint=endpoint,
        timeout=timeout,
    )


def fetch_pretrained(
    repo_id: str,
    load: Callable[[Path], M],
    revision: str | None = None,
    *,
    endpoint: str | None = None,
    token: str | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
) -> FetchedProducer[M]:
    """The producer of a Hub repo at ``revision`` (branch, tag or commit sha), read by ``load``
    (a pretrained-folder reader such as ``SphereSolver.from_folder``) once both files match the
    Hub's hashes.

    Raises:
        HubUnreachableError, HubNotFoundError (no repo, revision, ``config.json`` or
        ``model.safetensors``), HubIntegrityError, and ``load``'s CheckpointError, located as
        ``REPO@COMMIT/FILE``.
    """

    def checked(folder: Path, commit: str) -> M:
        try:
            return load(folder)
        except CheckpointError as err:
            raise type(err)(err.problem, f"{repo_id}@{commit[:12]}/{err.path.name}") from err

    snapshot, model = fetch_files(
        repo_id,
        checked,
        kind="model",
        required=(CONFIG_FILE, WEIGHTS_FILE),
        optional=(CARD_FILE,),
        revision=revision,
        endpoint=endpoint,
        token=token,
        cache_dir=cache_dir,
        local_files_only=local_files_only,
        timeout=timeout,
    )
    return FetchedProducer(model=model, snapshot=snapshot)


def download_pretrained(
    repo_id: str,
    out: str | Path,
    load: Callable[[Path], M],
    revision: str | None = None,
    **options: Any,
) -> FetchedProducer[M]:
    """:func:`fetch_pretrained`, then the verified files, byte for byte, written to the folder
    ``out`` (atomically, see :func:`write_pretrained`)."""
    fetched = fetch_pretrained(repo_id, load, revision, **options)
    folder = fetched.snapshot.folder
    names = [n for n in (CONFIG_FILE, WEIGHTS_FILE, CARD_FILE) if (folder / n).is_file()]
    write_pretrained(out, {name: (folder / name).read_bytes() for name in names})
    return fetched


def producer_card(
    model: PretrainedModule,
    *,
    repo_id: str,
    base_model: Sequence[str] = (),
    license: str = DEFAULT_LICENSE,
) -> str:
    """The ``README.md`` of a producer repo: a pure function of the model and the arguments."""
    cls = type(model)
    info = producer_info(model)
    n_params = sum(p.numel() for p in model.parameters())
    meta: dict[str, object] = {
        "library_name": "geolip",
        "license": license,
        "tags": ["geolip", "producer", info.kind.replace("_", "-")],
    }
    if base_model:
        meta["base_model"] = list(base_model)
        meta["base_model_relation"] = "finetune"
    meta["geolip"] = {
        "model_class": cls.__name__,
        "kind": info.kind,
        "preset": info.name,
        "parameters": n_params,
        "config_sha256": info.config_sha256,
        "weights_sha256": info.weights_sha256,
    }
    summary = (cls.__doc__ or cls.__name__).strip().splitlines()[0]
    config = json.dumps(model.pretrained_config(), indent=2, sort_keys=True)
    return "\n".join(
        [
            front_matter(meta),
            f"# {repo_id.split('/')[-1]}\n",
            f"A geolip producer, `{cls.__name__}`: {summary}\n",
            "| | |\n|---|---|",
            f"| class | `{cls.__module__}.{cls.__name__}` |",
            f"| preset | {info.name or 'none'} |",
            f"| parameters | {n_params:,} |",
            f"| config sha256 | `{info.config_sha256}` |",
            f"| weights sha256 | `{info.weights_sha256}` |\n",
            "Codebooks extracted from this model carry these two hashes in `meta.producer`.\n",
            f"## Config\n\n```json\n{config}\n```\n",
            "## Use\n",
            f"```python\nfrom {cls.__module__} import {cls.__name__}\n\n"
            f'model = {cls.__name__}.from_pretrained("{repo_id}")  # verified: file hashes, '
            "then a strict load\n```\n",
            'Pin a commit with `revision="<commit sha>"`; from the shell: '
            f"`geolip model pull {repo_id} --out model`.\n",
        ]
    )
