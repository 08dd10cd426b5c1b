"""The folder of a saved image tokenizer: one self-contained, flat folder, nothing pickled.

    tokenizer_config.json    format, version, top_k, vocabulary, special-token ids, and the
                             producer id and codebook id the folder must hold
    tokenizer.safetensors    rank_weights (V, top_k) float32
    config.json              the producer, as its save_pretrained writes it
    model.safetensors
    codebook.safetensors     the codebook artifact (docs/format.md)
    codebook.json

The folder is also a producer folder (``load_producer(folder)`` reads it) and a codebook
artifact (``Codebook.load(folder)``). It is written atomically and read back, producer id,
codebook id and weights compared, before it replaces anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save

from geolip._files import write_folder
from geolip._safetensors import load_tensors
from geolip.codebook import Codebook
from geolip.codebook import io as codebook_io
from geolip.errors import CheckpointError, CheckpointNotFoundError
from geolip.producers.contract import Producer
from geolip.producers.loading import load_folder, require_producer
from geolip.producers.pretrained import PretrainedModule, pretrained_files

TOKENIZER_FORMAT = "geolip.tokenizer"
TOKENIZER_VERSION = 1
CONFIG_FILE = "tokenizer_config.json"
WEIGHTS_FILE = "tokenizer.safetensors"


@dataclass(frozen=True)
class TokenizerParts:
    """What a tokenizer folder holds, verified."""

    producer: Producer
    codebook: Codebook
    top_k: int
    rank_weights: torch.Tensor


def write_tokenizer(
    folder: str | Path,
    parts: TokenizerParts,
    config: dict[str, Any],
) -> Path:
    """Write the folder (module docstring); ``config`` is what the tokenizer reports about
    itself (vocabulary, special ids), stored beside format, version, top_k and the two ids.

    Raises:
        TypeError: a producer that cannot be saved (no ``save_pretrained`` config).
    """
    return write_folder(
        folder, tokenizer_files(parts, config), verify=lambda tmp: _verify_tokenizer(tmp, parts)
    )


def _verify_tokenizer(folder: Path, parts: TokenizerParts) -> None:
    """Read ``folder`` back; CheckpointError unless it holds the settings of ``parts``."""
    back = read_tokenizer(folder)
    weights = parts.rank_weights.detach().cpu().float()
    if not torch.equal(back.rank_weights, weights) or back.top_k != parts.top_k:
        raise CheckpointError("read back other tokenizer settings than written", folder)


def tokenizer_files(parts: TokenizerParts, config: dict[str, Any]) -> dict[str, bytes]:
    """File name → bytes of a tokenizer folder (module docstring); other artifacts that
    carry their tokenizer (a diffusion model) add their own files beside these.

    Raises:
        TypeError: a producer that cannot be saved (no ``save_pretrained`` config).
    """
    producer = parts.producer
    if not isinstance(producer, PretrainedModule):
        raise TypeError(f"a {type(producer).__name__} cannot be saved with the tokenizer")
    cb = parts.codebook
    doc = {
        "format": TOKENIZER_FORMAT,
        "version": TOKENIZER_VERSION,
        "top_k": parts.top_k,
        "producer_id": producer.producer_id,
        "codebook_id": cb.id,
        **config,
    }
    weights = parts.rank_weights.detach().cpu().float().contiguous()
    return {
        **pretrained_files(producer.pretrained_config(), producer.state_dict()),
        codebook_io.TENSOR_FILE: codebook_io.serialize(cb.axes, cb.stats, cb.meta, cb.id),
        codebook_io.META_FILE: codebook_io.sidecar_json(cb.meta, cb.id).encode(),
        CONFIG_FILE: (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode(),
        WEIGHTS_FILE: save({"rank_weights": weights}, metadata={"format": TOKENIZER_FORMAT}),
    }


def read_tokenizer(folder: str | Path) -> TokenizerParts:
    """Read and verify a tokenizer folder.

    Raises:
        CheckpointNotFoundError: a file is missing. CheckpointError: a foreign or damaged
        file, or a producer or codebook other than the config names (each error names the
        file). Codebook errors of ``codebook.safetensors`` as :meth:`Codebook.load` raises them.
    """
    root = Path(folder)
    config_path = root / CONFIG_FILE
    if not config_path.is_file():
        raise CheckpointNotFoundError("missing: not a saved geolip tokenizer", config_path)
    try:
        doc = json.loads(config_path.read_text())
        if not isinstance(doc, dict):
            raise ValueError(f"a JSON {type(doc).__name__}, not an object")
    except ValueError as err:
        raise CheckpointError(f"not a tokenizer config ({err})", config_path) from err
    if doc.get("format") != TOKENIZER_FORMAT:
        problem = f"format is {doc.get('format')!r}, not {TOKENIZER_FORMAT!r}"
        raise CheckpointError(problem, config_path)
    if doc.get("version") != TOKENIZER_VERSION:
        raise CheckpointError(
            f"version {doc.get('version')!r} is not one this geolip reads ({TOKENIZER_VERSION})",
            config_path,
        )
    producer = require_producer(load_folder(root), root)
    codebook = Codebook.load(root)
    if producer.producer_id != doc.get("producer_id"):
        raise CheckpointError("the producer is not the one the config names", root / "config.json")
    if codebook.id != doc.get("codebook_id"):
        raise CheckpointError("the codebook is not the one the config names", config_path)
    tensors, meta = load_tensors(
        root / WEIGHTS_FILE, lambda problem, p: CheckpointError(f"unreadable ({problem})", p)
    )
    if meta.get("format") != TOKENIZER_FORMAT or set(tensors) != {"rank_weights"}:
        raise CheckpointError("not a tokenizer weights file", root / WEIGHTS_FILE)
    top_k = doc.get("top_k")
    if not isinstance(top_k, int):
        raise CheckpointError(f"top_k must be an integer, got {top_k!r}", config_path)
    return TokenizerParts(producer, codebook, top_k, tensors["rank_weights"])
