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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save

from geolip._files import write_folder
from geolip._safetensors import load_tensors, not_safetensors
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
    """Write ``state`` to the folder ``path`` atomically: a synced temporary folder, read back
    through :func:`load_checkpoint`, then renamed into place (an older checkpoint there is
    swapped out only then, and restored if the rename fails)."""
    opt_tensors, groups = optimizer_to_tensors(state.optimizer)
    config = {**state.config, "optimizer_param_groups": groups}
    files = {
        "model.safetensors": save(_cpu(state.model)),
        "optimizer.safetensors": save(opt_tensors),
        "rng.safetensors": save(state.rng),
        "config.json": (json.dumps(config, indent=2, sort_keys=True) + "\n").encode(),
    }
    return write_folder(path, files, verify=load_checkpoint)


def load_checkpoint(path: str | Path) -> TrainingState:
    """Read a checkpoint folder written by :func:`save_checkpoint`; refuse anything else."""
    folder = Path(path)
    if not folder.is_dir():
        raise CheckpointNotFoundError("not a checkpoint folder", folder)
    for name in FILES:
        if not (folder / name).is_file():
            raise CheckpointError("missing from the checkpoint", folder / name)
    tensors = {name: load_tensors(folder / name, not_safetensors)[0] for name in FILES[:3]}
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


def _cpu(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
