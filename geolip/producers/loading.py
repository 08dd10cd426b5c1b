"""Find a producer by name: a geolip checkpoint folder, an upstream checkpoint, or a shipped one."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from geolip._safetensors import load_tensors, not_safetensors
from geolip.errors import CheckpointError, CheckpointNotFoundError
from geolip.producers.battery_array import BatteryArray
from geolip.producers.sphere_solver import SphereSolver, SphereSolverConfig
from geolip.producers.upstream import load_upstream

PRETRAINED_PREFIX = "pretrained:"


def pretrained_dir() -> Path:
    """The folder of small pretrained producers shipped inside the package."""
    return Path(str(resources.files("geolip") / "data" / "pretrained"))


def pretrained_names() -> list[str]:
    """Names usable as ``pretrained:NAME``."""
    root = pretrained_dir()
    return (
        sorted(p.name for p in root.iterdir() if (p / "config.json").is_file())
        if (root.is_dir())
        else []
    )


def load_checkpoint_model(folder: str | Path) -> SphereSolver:
    """A model from a geolip checkpoint folder (``config.json`` + ``model.safetensors``)."""
    folder = Path(folder)
    config_path, weights_path = folder / "config.json", folder / "model.safetensors"
    for p in (config_path, weights_path):
        if not p.is_file():
            raise CheckpointNotFoundError("missing: not a geolip checkpoint folder", p)
    try:
        doc = json.loads(config_path.read_text())
        config = SphereSolverConfig(**doc["model"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"no sphere-solver model config ({err})", config_path) from err
    if doc.get("model_class", "SphereSolver") != "SphereSolver":
        raise CheckpointError(
            f"model class {doc['model_class']!r} is not a SphereSolver", config_path
        )
    state, _ = load_tensors(weights_path, not_safetensors)
    model = SphereSolver(config, preset=doc.get("preset"))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise CheckpointError(f"weights do not fit the config ({first})", weights_path) from err
    return model.eval()


def load_producer(source: str | Path) -> SphereSolver:
    """``pretrained:NAME``, a geolip checkpoint folder, or an upstream ``.pt``/``.safetensors``."""
    text = str(source)
    if text.startswith(PRETRAINED_PREFIX):
        name = text[len(PRETRAINED_PREFIX) :]
        folder = pretrained_dir() / name
        if not (folder / "config.json").is_file():
            known = ", ".join(pretrained_names()) or "none shipped"
            raise CheckpointNotFoundError(
                f"no pretrained producer {name!r} (known: {known})", folder
            )
        return load_checkpoint_model(folder)
    path = Path(source)
    if path.is_dir():
        return load_checkpoint_model(path)
    return load_upstream(path)


def load_pretrained_folder(folder: str | Path) -> SphereSolver | BatteryArray:
    """A pretrained folder (or training checkpoint) of the producer class its config.json names."""
    try:
        kind = json.loads((Path(folder) / "config.json").read_text()).get("model_class")
    except (OSError, ValueError, AttributeError):
        kind = None  # the SphereSolver loader says what is wrong with the folder
    return BatteryArray.load(folder) if kind == "BatteryArray" else load_checkpoint_model(folder)


def load_model(source: str | Path) -> SphereSolver | BatteryArray:
    """Any producer geolip can publish: a folder of any producer class (see
    :func:`load_pretrained_folder`), ``pretrained:NAME`` or an upstream checkpoint file."""
    if Path(source).is_dir():
        return load_pretrained_folder(source)
    return load_producer(source)
