"""The one producer loader: ``pretrained:NAME``, a saved folder, an upstream file, a Hub repo.

A folder (a ``save_pretrained`` folder or a training checkpoint) is read by the class its
``config.json`` names in ``model_class``; model classes are registered here with
:func:`register_model_class` and never import this module back.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

from geolip.errors import CheckpointError, CheckpointNotFoundError, IncompatibleInputError
from geolip.producers.battery_array import BatteryArray
from geolip.producers.contract import Producer
from geolip.producers.cv_battery import CVBattery
from geolip.producers.glfm import GLFM
from geolip.producers.pretrained import CONFIG_FILE, PretrainedModule
from geolip.producers.sphere_solver import SphereSolver
from geolip.producers.svae_transformer import SVAETransformer
from geolip.producers.upstream import load_upstream

PRETRAINED_PREFIX = "pretrained:"
DEFAULT_MODEL_CLASS = "SphereSolver"
"""What a ``config.json`` without ``model_class`` holds (training checkpoints of geolip 0.1)."""
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

_MODEL_CLASSES: dict[str, type[PretrainedModule]] = {}


def register_model_class(cls: type[PretrainedModule]) -> type[PretrainedModule]:
    """Make folders whose ``config.json`` says ``"model_class": cls.__name__`` loadable."""
    taken = _MODEL_CLASSES.get(cls.__name__)
    if taken is not None and taken is not cls:
        raise ValueError(f"model class name {cls.__name__!r} is already registered")
    _MODEL_CLASSES[cls.__name__] = cls
    return cls


def model_classes() -> list[str]:
    """Names of the registered model classes."""
    return sorted(_MODEL_CLASSES)


def pretrained_dir() -> Path:
    """The folder of small pretrained producers shipped inside the package."""
    return Path(str(resources.files("geolip") / "data" / "pretrained"))


def pretrained_names() -> list[str]:
    """Names usable as ``pretrained:NAME``."""
    root = pretrained_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / CONFIG_FILE).is_file())


def load_folder(folder: str | Path) -> PretrainedModule:
    """A saved folder or training checkpoint, read by its ``model_class``, in eval mode."""
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        raise CheckpointNotFoundError("missing: not a saved model folder", path)
    try:
        doc = json.loads(path.read_text())
        name = doc.get("model_class", DEFAULT_MODEL_CLASS) if isinstance(doc, dict) else None
    except ValueError as err:  # JSON and UTF-8 errors
        raise CheckpointError(f"not a model config ({err})", path) from err
    if name not in _MODEL_CLASSES:
        known = ", ".join(model_classes())
        raise CheckpointError(f"model_class {name!r} is not one geolip knows ({known})", path)
    return _MODEL_CLASSES[name].from_folder(Path(folder))


def load_producer(source: str | Path, revision: str | None = None) -> PretrainedModule:
    """Load any model geolip can read, in eval mode.

    Args:
        source: ``pretrained:NAME`` (shipped with geolip), a folder (``save_pretrained`` or a
            training checkpoint, by its ``model_class``), an upstream ``.pt``/``.safetensors``
            file, or a Hub repo id ``owner/name`` (verified, cached; works offline from the
            cache).
        revision: branch, tag or commit of a Hub repo; refused for local sources.

    Raises:
        CheckpointNotFoundError: nothing at ``source``. CheckpointError, HubError: refused,
            naming the file or repo and the problem.
    """
    text = str(source)
    local = text.startswith(PRETRAINED_PREFIX) or Path(source).exists()
    if local and revision is not None:
        raise ValueError(f"revision {revision!r} applies to Hub repos only, not {text!r}")
    if text.startswith(PRETRAINED_PREFIX):
        return load_folder(_shipped(text[len(PRETRAINED_PREFIX) :]))
    path = Path(source)
    if path.is_dir():
        return load_folder(path)
    if path.is_file() or not _REPO_ID.match(text):
        return load_upstream(path)
    from geolip.hub import HubTarget, fetch_pretrained  # hub → producers: a late import

    return fetch_pretrained(HubTarget(repo_id=text, revision=revision), load_folder).model


def require_producer(model: PretrainedModule, source: str | Path) -> Producer:
    """``model`` as a row :class:`Producer`, or an IncompatibleInputError saying why not."""
    if isinstance(model, Producer):
        return model
    raise IncompatibleInputError(
        f"{source}: a {type(model).__name__} emits no rows of its own"
        + (
            "; take one of its banks (BatteryArray.bank) or its per-bank codebooks"
            if isinstance(model, BatteryArray)
            else ""
        )
    )


def _shipped(name: str) -> Path:
    folder = pretrained_dir() / name
    if not (folder / CONFIG_FILE).is_file():
        known = ", ".join(pretrained_names()) or "none shipped"
        raise CheckpointNotFoundError(f"no pretrained producer {name!r} (known: {known})", folder)
    return folder


for _cls in (SphereSolver, BatteryArray, GLFM, SVAETransformer, CVBattery):
    register_model_class(_cls)
