"""The folder of a saved diffusion model: one flat folder, nothing pickled.

    diffusion_config.json       format, version, denoiser config, classes, training size
                                (the smallest one), schedule, the tokenizer's producer id,
                                codebook id and top_k, and the training record (dataset, its
                                sizes, settings, step reached)
    diffusion.safetensors       the denoiser's weights
    trainer_state.safetensors   optimizer moments and generator state (training checkpoints:
                                what ``--resume`` continues from; sampling never reads it)
    tokenizer files             the tokenizer folder it models (tokenizer_io), so the folder
                                is also a tokenizer, a producer and a codebook artifact

It is written atomically and read back, every tensor compared, before it replaces anything.
Tensors are written from the CPU whatever device the model trains on, and read onto the CPU.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save

from geolip._files import write_folder
from geolip._safetensors import load_tensors
from geolip.downstream.diffusion import AxisDenoiser, DenoiserConfig, DiffusionModel
from geolip.downstream.diffusion_schedules import SCHEDULES
from geolip.downstream.tokenizer import GeolipImageTokenizer
from geolip.downstream.tokenizer_io import tokenizer_files
from geolip.errors import CheckpointError, CheckpointNotFoundError

DIFFUSION_FORMAT = "geolip.diffusion"
STATE_FORMAT = "geolip.diffusion-trainer"
DIFFUSION_VERSION = 1
CONFIG_FILE = "diffusion_config.json"
WEIGHTS_FILE = "diffusion.safetensors"
STATE_FILE = "trainer_state.safetensors"


def save_diffusion(
    folder: str | Path,
    model: DiffusionModel,
    training: dict[str, Any] | None = None,
    state: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write ``model`` as the folder (module docstring) atomically, read back first.

    Args:
        training: the JSON training record (dataset, settings, step); None for none.
        state: trainer tensors (optimizer moments, generator state) for a resumable checkpoint.

    Returns:
        the folder.
    """
    tok = model.tokenizer
    doc = {
        "format": DIFFUSION_FORMAT,
        "version": DIFFUSION_VERSION,
        "denoiser": model.denoiser.config.model_dump(mode="json"),
        "classes": list(model.classes),
        "train_size": list(model.train_size),
        "schedule": model.schedule,
        "tokenizer": _tokenizer_identity(tok),
        "training": training,
    }
    weights = {k: v.detach().cpu().contiguous() for k, v in model.denoiser.state_dict().items()}
    files = tokenizer_files(tok.parts(), tok.describe())
    files[CONFIG_FILE] = (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()
    files[WEIGHTS_FILE] = save(weights, metadata={"format": DIFFUSION_FORMAT})
    saved_state = None
    if state is not None:
        saved_state = {k: v.detach().cpu().contiguous() for k, v in state.items()}
        files[STATE_FILE] = save(saved_state, metadata={"format": STATE_FORMAT})

    def verify(tmp: Path) -> None:
        back = load_diffusion(tmp).denoiser.state_dict()
        if any(not torch.equal(back[k], v) for k, v in weights.items()):
            raise CheckpointError("read back other denoiser weights than written", tmp)
        if saved_state is not None:
            _, tensors = read_training(tmp)
            if any(not torch.equal(tensors[k], v) for k, v in saved_state.items()):
                raise CheckpointError("read back another trainer state than written", tmp)

    return write_folder(folder, files, verify=verify)


def load_diffusion(path: str | Path) -> DiffusionModel:
    """Read and verify a diffusion folder (module docstring), the denoiser in eval mode.

    Raises:
        CheckpointNotFoundError: no ``diffusion_config.json``. CheckpointError: a foreign,
        damaged or inconsistent file, named in the error (tokenizer files as
        :meth:`GeolipImageTokenizer.from_pretrained` refuses them).
    """
    root = Path(path)
    doc = _read_config(root)
    config_path = root / CONFIG_FILE
    try:
        config = DenoiserConfig(**doc["denoiser"])
        classes = tuple(str(c) for c in doc["classes"])
        h, w = (int(s) for s in doc["train_size"])
        schedule = doc["schedule"]
        identity = doc["tokenizer"]
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"not a diffusion config ({err})", config_path) from err
    if schedule not in SCHEDULES:
        raise CheckpointError(f"unknown masking schedule {schedule!r}", config_path)
    if config.num_classes != len(classes):
        raise CheckpointError(
            f"{len(classes)} class names for a denoiser of {config.num_classes} classes",
            config_path,
        )
    tok = GeolipImageTokenizer.from_pretrained(root)
    if _tokenizer_identity(tok) != identity:
        raise CheckpointError(
            "the tokenizer in the folder is not the one the config names", config_path
        )
    if config.axis_tokens != 2 * tok.codebook.size or config.top_k != tok.top_k:
        raise CheckpointError("the denoiser's vocabulary does not fit the tokenizer", config_path)
    weights, meta = load_tensors(
        root / WEIGHTS_FILE, lambda problem, p: CheckpointError(f"unreadable ({problem})", p)
    )
    if meta.get("format") != DIFFUSION_FORMAT:
        raise CheckpointError("not a diffusion weights file", root / WEIGHTS_FILE)
    denoiser = AxisDenoiser(config)
    expected = {k: v.shape for k, v in denoiser.state_dict().items()}
    found = {k: v.shape for k, v in weights.items()}
    if expected != found:
        wrong = sorted(k for k in expected.keys() | found.keys() if expected.get(k) != found.get(k))
        raise CheckpointError(
            f"weights do not fit the config ({len(wrong)} tensors differ, first {wrong[0]!r})",
            root / WEIGHTS_FILE,
        )
    denoiser.load_state_dict(weights)
    return DiffusionModel(denoiser.eval(), tok, classes, (h, w), schedule)


def read_training(path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(training record, trainer tensors) of a training checkpoint folder.

    Raises:
        CheckpointNotFoundError: no config or no trainer state (a folder that cannot be resumed).
        CheckpointError: a damaged or foreign file, named in the error.
    """
    root = Path(path)
    doc = _read_config(root)
    record = doc.get("training")
    if not isinstance(record, dict):
        raise CheckpointError("no training record: not a training checkpoint", root / CONFIG_FILE)
    state_path = root / STATE_FILE
    if not state_path.is_file():
        raise CheckpointNotFoundError("missing: this folder cannot be resumed", state_path)
    tensors, meta = load_tensors(
        state_path, lambda problem, p: CheckpointError(f"unreadable ({problem})", p)
    )
    if meta.get("format") != STATE_FORMAT:
        raise CheckpointError("not a diffusion trainer state", state_path)
    return record, tensors


def _read_config(root: Path) -> dict[str, Any]:
    path = root / CONFIG_FILE
    if not path.is_file():
        raise CheckpointNotFoundError("missing: not a saved geolip diffusion model", path)
    try:
        doc = json.loads(path.read_text())
        if not isinstance(doc, dict):
            raise ValueError(f"a JSON {type(doc).__name__}, not an object")
    except (ValueError, UnicodeDecodeError) as err:
        raise CheckpointError(f"not a diffusion config ({err})", path) from err
    if doc.get("format") != DIFFUSION_FORMAT:
        raise CheckpointError(f"format is {doc.get('format')!r}, not {DIFFUSION_FORMAT!r}", path)
    if doc.get("version") != DIFFUSION_VERSION:
        raise CheckpointError(
            f"version {doc.get('version')!r} is not one this geolip reads ({DIFFUSION_VERSION})",
            path,
        )
    return doc


def _tokenizer_identity(tok: GeolipImageTokenizer) -> dict[str, Any]:
    return {
        "producer_id": tok.producer.producer_id,
        "codebook_id": tok.codebook.id,
        "top_k": tok.top_k,
    }
