"""One preset table: name → (model class and config, training recipe).

``geolip train sphere-solver --preset NAME``, :func:`run_quickstart` and the Python API all go
through :func:`build` and :func:`train_preset`. A new producer family registers its presets
here with :func:`register_preset`; nothing else needs to know its name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch
import torch.distributed as dist
from pydantic import BaseModel

from geolip.producers.contract import ProducerModule
from geolip.producers.cv_battery import CVBattery, CVBatteryConfig
from geolip.producers.glfm import GLFM, GLFMConfig
from geolip.producers.sphere_solver import SphereSolver, SphereSolverConfig
from geolip.producers.svae_transformer import SVAETransformer, SVAETransformerConfig
from geolip.producers.train import (
    TrainConfig,
    Trainer,
    leave_distributed,
    maybe_init_distributed,
)


@dataclass(frozen=True)
class Preset:
    """A named model and the recipe it is trained with.

    Attributes:
        name: what users type after ``--preset``.
        model_class: the producer family; built as ``model_class(model)``.
        model: its frozen pydantic config.
        train: :class:`TrainConfig` fields (lr, batch, epochs, noises, ...).
        note: where the preset comes from, one line.
    """

    name: str
    model_class: type[ProducerModule]
    model: BaseModel
    train: Mapping[str, Any] = field(default_factory=dict)
    note: str = ""


_PRESETS: dict[str, Preset] = {}
PRESETS: Mapping[str, Preset] = MappingProxyType(_PRESETS)
"""Read-only view of every registered preset, in registration order."""


def register_preset(preset: Preset) -> Preset:
    """Add ``preset`` to the table; a name already taken is refused."""
    if preset.name in _PRESETS:
        raise ValueError(f"preset {preset.name!r} is already registered")
    TrainConfig(**preset.train)  # a recipe that cannot train is refused now, not at run time
    _PRESETS[preset.name] = preset
    return preset


def get_preset(name: str) -> Preset:
    """The preset called ``name``; an unknown name raises ValueError listing the known ones."""
    if name not in _PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(_PRESETS)}")
    return _PRESETS[name]


def build(name: str, seed: int | None = None, **model_overrides: Any) -> ProducerModule:
    """A freshly initialised producer of preset ``name``, config fields overridden.

    Args:
        seed: initialise under ``torch.manual_seed(seed)`` without touching the global RNG;
            ``None`` draws from the global RNG.

    Raises:
        ValueError: unknown preset, or overrides the model config refuses (pydantic names the
            field).
    """
    preset = get_preset(name)
    config = type(preset.model)(**{**preset.model.model_dump(), **model_overrides})
    if seed is None:
        return _instantiate(preset, config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _instantiate(preset, config)


def _instantiate(preset: Preset, config: BaseModel) -> ProducerModule:
    model = preset.model_class(config)
    model.preset = preset.name
    return model


def train_config(name: str, **overrides: Any) -> TrainConfig:
    """The recipe of preset ``name`` with ``overrides`` applied (pydantic-validated)."""
    return TrainConfig(**{**get_preset(name).train, **overrides})


def train_preset(
    name: str,
    out: str | Path,
    *,
    seed: int | None = None,
    device: str = "cpu",
    resume: bool = False,
    progress: bool = True,
    model_overrides: Mapping[str, Any] | None = None,
    announce: Callable[[str], object] | None = None,
    **train_overrides: Any,
) -> Trainer:
    """Build preset ``name`` under ``seed``, train it into ``out`` and return the trainer
    (its ``model``, ``history``, ``best_mse``; checkpoints ``out/latest``, ``out/best``).

    Under ``torchrun`` (WORLD_SIZE > 1) the process group is joined first, each rank takes its
    own CUDA device, and the group is left again when training ends. ``announce`` receives
    one line (parameters, epochs, steps, batch, device) before the first step.

    ``seed`` defaults to 0. With ``resume=True`` every train field and model field not given
    defaults to the checkpoint's (``out/latest``), so ``resume=True`` alone continues the run
    as it was started; a given field that differs is refused naming it, except ``epochs``: a
    larger value extends the run and the remaining epochs follow the cosine of the new
    ``T_max`` (see :meth:`Trainer._retarget_schedule`). Ctrl-C saves ``out/latest`` and raises
    :class:`~geolip.errors.TrainingInterrupted`.
    """
    model_fields = dict(model_overrides or {})
    if resume:
        saved = _saved_run(Path(out) / "latest")
        train_overrides = {**saved.get("train", {}), **train_overrides}
        if seed is None:
            seed = train_overrides.get("seed", 0)
        if saved.get("preset") not in (None, name):
            raise ValueError(
                f"{Path(out) / 'latest'}: the run was trained with preset "
                f"{saved['preset']!r}, not {name!r}; not resuming"
            )
        preset_model = get_preset(name).model
        nested = saved.get("model")  # SphereSolver nests its config under "model"
        source = nested if isinstance(nested, dict) else saved
        stored = {k: source[k] for k in type(preset_model).model_fields if k in source}
        requested = type(preset_model)(**{**preset_model.model_dump(), **stored, **model_fields})
        changed = [k for k in stored if requested.model_dump(mode="json").get(k) != stored[k]]
        if changed:
            fields = ", ".join(
                f"{k}: {stored[k]!r} → {requested.model_dump(mode='json')[k]!r}" for k in changed
            )
            raise ValueError(
                f"{Path(out) / 'latest'}: model config differs from the checkpoint's ({fields}); "
                "not resuming"
            )
        model_fields = {**stored, **model_fields}
    seed = 0 if seed is None else seed
    config = train_config(name, **{**train_overrides, "seed": seed})
    model = build(name, seed=seed, **model_fields)
    already = dist.is_available() and dist.is_initialized()
    joined = maybe_init_distributed() and not already
    if dist.is_available() and dist.is_initialized() and device.startswith("cuda"):
        device = f"cuda:{torch.cuda.current_device()}"
    trainer = Trainer(model, config, out, device=device, resume=resume)
    if announce is not None:
        n_params = sum(p.numel() for p in model.parameters())
        announce(
            f"{name}: {n_params:,} parameters, {config.epochs} epochs of "
            f"{config.steps_per_epoch} steps × {config.batch_size} images on {device}"
        )
    try:
        trainer.fit(progress=progress and trainer.rank == 0)
    finally:
        if joined and dist.is_initialized():
            leave_distributed(trainer)
    return trainer


def _saved_run(latest: Path) -> dict[str, Any]:
    """``config.json`` of the checkpoint ``latest`` (model fields, ``train``, counters)."""
    from geolip.producers.checkpoint import load_checkpoint

    return load_checkpoint(latest).config


# ------------------------------------------------------------------------------ the table
_H2_RECIPE = {  # h2_64_single: gaussian only, 200K samples per epoch
    "batch_size": 128,
    "lr": 1e-3,
    "epochs": 20,
    "steps_per_epoch": 1563,
    "noises": ("gaussian",),
}
_FRECKLES_MODEL = SphereSolverConfig(
    V=48, D=4, patch_size=4, hidden=384, depth=4, n_cross=2, smooth_mid=8
)
_H2_MODEL = {"V": 32, "D": 4, "patch_size": 4, "hidden": 64, "smooth_mid": 16, "readout": "linear"}

for _preset in (
    Preset(
        "fresnel",
        SphereSolver,
        SphereSolverConfig(
            V=256, D=16, patch_size=16, hidden=768, depth=4, n_cross=2, smooth_mid=16
        ),
        {"batch_size": 512, "lr": 3e-4, "epochs": 300, "steps_per_epoch": 977},
        "johanna_tiny (Fresnel geometry on noise), 500K samples an epoch; 16,942,419 parameters",
    ),
    Preset(
        "freckles",
        SphereSolver,
        _FRECKLES_MODEL,
        {"batch_size": 256, "lr": 1e-4, "epochs": 100, "steps_per_epoch": 1953},
        "freckles_64 → v40, 16 noises, 500K samples an epoch; 2,557,539 parameters",
    ),
    Preset(
        "freckles-quick",
        SphereSolver,
        _FRECKLES_MODEL,
        {
            "batch_size": 256,
            "lr": 2e-3,
            "epochs": 1,
            "steps_per_epoch": 1000,
            "lr_schedule": "warmup-cosine",
            "warmup_steps": 100,
        },
        "the Freckles model on the recipe that reached validation MSE 0.0035 fastest on a GPU "
        "(docs/benchmarks.md, time to quality): 1,000 steps, lr 2e-3 after 100 warm-up steps, "
        "cosine to 0",
    ),
    Preset(
        "h2",
        SphereSolver,
        SphereSolverConfig(**_H2_MODEL, depth=1, n_cross=1, n_heads=4),
        _H2_RECIPE,
        "H2 linear-matched readout with one cross-attention layer; 57,215 parameters",
    ),
    Preset(
        "h2a",
        SphereSolver,
        SphereSolverConfig(**_H2_MODEL, depth=0, n_cross=0),
        _H2_RECIPE,
        "H2 ablation without residual blocks or cross-attention; 40,227 parameters",
    ),
    Preset(
        "p_class",
        SphereSolver,
        SphereSolverConfig(**{**_H2_MODEL, "D": 3}, depth=0, n_cross=0),
        _H2_RECIPE,
        "the H2 ablation at D = 3; 28,899 parameters",
    ),
):
    register_preset(_preset)

# GLFM (spec §D): upstream's recipe is not in the sources; ours, on procedural shapes at 32²
_GLFM_RECIPE = {
    "batch_size": 64,
    "lr": 3e-4,
    "epochs": 20,
    "steps_per_epoch": 1000,
    "img_size": 32,
    "dataset": "shapes:n=20000,size=32",
}
for _preset in (
    Preset(
        "glfm-v1",
        GLFM,
        GLFMConfig(variant="regulator"),
        _GLFM_RECIPE,
        "v1 regulator: fine lookup as a gated side channel (gate logit −3); 3,887,636 parameters",
    ),
    Preset(
        "glfm-v3",
        GLFM,
        GLFMConfig(variant="bottleneck"),
        _GLFM_RECIPE,
        "v3 pure bottleneck: everything through the coarse S^15 address; 32,561,171 parameters",
    ),
    Preset(
        "glfm-v4",
        GLFM,
        GLFMConfig(variant="glfm"),
        _GLFM_RECIPE,
        "v4 GLFM: coarse + fine addresses, 256 anchors × 3 phases each; 33,351,715 parameters",
    ),
    Preset(
        "glfm-plain",
        GLFM,
        GLFMConfig(variant="glfm", lookup="linear"),
        _GLFM_RECIPE,
        "v4 without the constellation (Linear + GELU lookup): the plain control; "
        "33,360,675 parameters",
    ),
):
    register_preset(_preset)

# SVAE-transformer: the battery and lens of the upstream prototype (image run: 16² images,
# D_lens 16; text run: D_lens 64); the recipes are ours, on bundled offline data
for _preset in (
    Preset(
        "svae-transformer",
        SVAETransformer,
        SVAETransformerConfig(),
        {
            "batch_size": 64,
            "lr": 1e-3,
            "epochs": 8,
            "steps_per_epoch": 500,
            "img_size": 16,
            "dataset": "shapes:n=4000,size=16",
        },
        "battery V 32, D 4, ps 2 under a lens to D_lens 16, 2 spectral-alpha layers of 4 heads, "
        "shell 128 wide, on image patches; 154,452 parameters",
    ),
    Preset(
        "svae-transformer-minilm",
        SVAETransformer,
        SVAETransformerConfig(inputs="tokens", D_lens=64),
        {
            "batch_size": 32,
            "lr": 1e-3,
            "epochs": 20,
            "steps_per_epoch": 200,
            "img_size": None,
            "eval_per_type": 32,
            "dataset": "minilm-tokens:n=2000,tokens=16",
        },
        "the same battery on MiniLM token states (F 384), lens to D_lens 64; 478,428 parameters",
    ),
):
    register_preset(_preset)

# CV-battery autoencoder: CV target 0.215 at weight 20 (alignment epochs) then 10; the recipe
# (16 noises at 32², Adam 1e-3) is ours
_CV_RECIPE = {"batch_size": 64, "lr": 1e-3, "epochs": 10, "steps_per_epoch": 500, "img_size": 32}
for _preset in (
    Preset(
        "cv-battery",
        CVBattery,
        CVBatteryConfig(),
        _CV_RECIPE,
        "VAE over 16 battery blocks of V 8 × D 8 per 4×4 patch, CV loss to 0.215; "
        "370,224 parameters",
    ),
    Preset(
        "cv-battery-nocv",
        CVBattery,
        CVBatteryConfig(cv_weight_align=0.0, cv_weight_hand=0.0),
        _CV_RECIPE,
        "cv-battery without the CV loss: the control; 370,224 parameters",
    ),
):
    register_preset(_preset)
