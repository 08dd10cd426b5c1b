"""Training checkpoints: safetensors + JSON only, written atomically, resumable exactly.

A checkpoint is a folder:

| file | content |
|---|---|
| ``model.safetensors`` | the model's state dict |
| ``optimizer.safetensors`` | every tensor of the optimizer state, keyed ``state.<param>.<name>`` |
| ``rng.safetensors`` | the CPU (and CUDA) RNG states and the data generator state, uint8 |
| ``config.json`` | model config, train config, optimizer param groups, counters, metrics |

Nothing is pickled; a folder that fails to parse is refused with a message naming the file.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from geolip.errors import CheckpointError, CheckpointNotFoundError

FILES = ("model.safetensors", "optimizer.safetensors", "rng.safetensors", "config.json")


@dataclass
class TrainingState:
    """Everything needed to continue a run exactly where it stopped."""

    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    rng: dict[str, torch.Tensor]
    config: dict[str, Any]


def optimizer_to_tensors(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], list[Any]]:
    """Split ``optimizer.state_dict()`` into flat tensors and JSON-safe param groups."""
    tensors: dict[str, torch.Tensor] = {}
    for index, per_param in state["state"].items():
        for name, value in per_param.items():
            t = value if isinstance(value, torch.Tensor) else torch.tensor(value)
            tensors[f"state.{index}.{name}"] = t.detach().cpu().contiguous()
    return tensors, state["param_groups"]


def optimizer_from_tensors(tensors: dict[str, torch.Tensor], groups: list[Any]) -> dict[str, Any]:
    """Inverse of :func:`optimizer_to_tensors`."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = value
    return {"state": state, "param_groups": groups}


def save_checkpoint(path: str | Path, state: TrainingState) -> Path:
    """Write ``state`` to the folder ``path`` atomically (temp folder, fsync, rename)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
    opt_tensors, groups = optimizer_to_tensors(state.optimizer)
    try:
        tmp.mkdir()
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in state.model.items()},
            tmp / "model.safetensors",
        )
        save_file(opt_tensors, tmp / "optimizer.safetensors")
        save_file(state.rng, tmp / "rng.safetensors")
        config = {**state.config, "optimizer_param_groups": groups}
        (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        for name in FILES:
            with open(tmp / name, "rb") as f:
                os.fsync(f.fileno())
        old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
        if target.exists():
            os.rename(target, old)
        os.rename(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_checkpoint(path: str | Path) -> TrainingState:
    """Read a checkpoint folder written by :func:`save_checkpoint`; refuse anything else."""
    folder = Path(path)
    if not folder.is_dir():
        raise CheckpointNotFoundError("not a checkpoint folder", folder)
    for name in FILES:
        if not (folder / name).is_file():
            raise CheckpointError("missing from the checkpoint", folder / name)
    tensors = {}
    for name in FILES[:3]:
        try:
            tensors[name] = load_file(folder / name)
        except (SafetensorError, OSError, ValueError) as err:
            raise CheckpointError(f"not a valid safetensors file ({err})", folder / name) from err
    try:
        config = json.loads((folder / "config.json").read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"not valid JSON ({err})", folder / "config.json") from err
    if not isinstance(config, dict) or "optimizer_param_groups" not in config:
        raise CheckpointError("not a geolip training config", folder / "config.json")
    groups = config.pop("optimizer_param_groups")
    return TrainingState(
        model=tensors["model.safetensors"],
        optimizer=optimizer_from_tensors(tensors["optimizer.safetensors"], groups),
        rng=tensors["rng.safetensors"],
        config=config,
    )
