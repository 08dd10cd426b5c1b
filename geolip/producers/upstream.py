"""Load checkpoints of the upstream geolip-svae PatchSVAE into a :class:`SphereSolver`.

Upstream checkpoints come as a torch file holding either a bare state dict or a training
snapshot {model_state_dict, config, optimizer state, epoch, ...}, or as a ``.safetensors``
state dict. SphereSolver names its modules as upstream does, so the key map is the identity:
``enc_in``, ``enc_blocks.{i}.{0,1,3}``, ``enc_out``, ``readout`` (H2 linear readout only),
``cross_attn.{i}.{qkv,out_proj,norm,alpha_logits}``, ``dec_in``, ``dec_blocks.{i}.{0,1,3}``,
``dec_out``, ``boundary_smooth.net.{0,2}``. Torch files are read with ``weights_only=True``:
a checkpoint that needs arbitrary unpickling is refused, never executed.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pydantic
import safetensors.torch
import torch

from geolip.errors import CheckpointError, CheckpointNotFoundError
from geolip.producers.sphere_solver import SphereSolver, SphereSolverConfig

_UPSTREAM_FIELDS = {
    "V": "V",
    "D": "D",
    "patch_size": "patch_size",
    "hidden": "hidden",
    "depth": "depth",
    "n_cross_layers": "n_cross",
    "n_heads": "n_heads",
    "smooth_mid": "smooth_mid",
}
"""Upstream training-config key → SphereSolverConfig field."""


def load_upstream(
    path: str | Path, *, D: int | None = None, n_heads: int | None = None
) -> SphereSolver:
    """Build a SphereSolver from an upstream PatchSVAE checkpoint, in eval mode.

    The architecture is read from the tensor shapes (hidden, ps, C, V·D, depth, n_cross,
    smooth_mid, linear readout) and cross-checked against the checkpoint's ``config`` when
    there is one. Two numbers are not in the shapes: D when there is no cross-attention
    (only V·D is), and the number of attention heads. They come from the config; without one
    (safetensors, bare state dicts) pass them as ``D`` / ``n_heads`` — a checkpoint that needs
    them and lacks them is refused rather than guessed. Loading is strict.

    Raises:
        CheckpointNotFoundError: no file at ``path``.
        CheckpointError: unreadable or truncated file, pickled objects ``weights_only``
            refuses, no PatchSVAE state dict, missing/unexpected keys, wrong shapes, non-float
            or non-finite weights, config and weights disagreeing, or an upstream variant
            SphereSolver does not implement. The message names the file and the problem.
    """
    for name, hint in (("D", D), ("n_heads", n_heads)):
        if hint is not None and hint < 1:
            raise ValueError(f"{name} must be ≥ 1, got {hint}")
    path = Path(path)
    state, config = _read(path)
    solver_config = _infer_config(state, config, path, {"D": D, "n_heads": n_heads})
    bad = [k for k, v in state.items() if not v.is_floating_point() or not v.isfinite().all()]
    if bad:
        raise CheckpointError(f"non-float or non-finite weights in {bad[:5]}", path)
    model = SphereSolver(solver_config)
    _check_fit(state, model.state_dict(), path)
    model.load_state_dict(state, strict=True)
    return model.eval()


def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """→ (state dict, upstream training config or None)."""
    if not path.is_file():
        raise CheckpointNotFoundError("no such checkpoint file", path)
    if path.suffix == ".safetensors":
        try:
            return safetensors.torch.load_file(path), None
        except Exception as err:  # the Rust reader raises its own types; all mean "unreadable"
            raise CheckpointError(f"unreadable safetensors file: {_first_line(err)}", path) from err
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle, zip and EOF errors alike mean "unreadable"
        refused = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        if refused:
            problem = f"holds a pickled {refused.group(1)}, which weights_only loading refuses"
        else:
            problem = f"unreadable torch checkpoint (corrupt or truncated): {_first_line(err)}"
        raise CheckpointError(problem, path) from err
    state, config = obj, None
    if isinstance(obj, dict) and "model_state_dict" in obj:
        state, config = obj["model_state_dict"], obj.get("config")
    if not (
        isinstance(state, dict)
        and state
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items())
    ):
        raise CheckpointError(
            "holds no state dict of tensors (expected one, or a dict with 'model_state_dict')",
            path,
        )
    if config is not None and not isinstance(config, dict):
        raise CheckpointError(f"'config' is a {type(config).__name__}, expected a dict", path)
    return state, config


def _infer_config(
    state: dict[str, torch.Tensor],
    config: dict[str, Any] | None,
    path: Path,
    given: dict[str, int | None],
) -> SphereSolverConfig:
    """Architecture from shapes, completed by the upstream config and the caller's D/n_heads;
    every source must agree with the shapes and with each other."""
    found, L = _shape_derived_fields(state, path)
    fields = _agreed_fields(found, config, given, path)
    fields["V"] = _checked_V(fields, L, path)
    if found["n_cross"] and config is None and "n_heads" not in fields:
        raise CheckpointError(
            "the number of attention heads cannot be read from the weights and there is no "
            "config; pass n_heads=",
            path,
        )
    try:
        return SphereSolverConfig(**fields)
    except pydantic.ValidationError as err:
        reasons = "; ".join(e["msg"] for e in err.errors())
        raise CheckpointError(f"inconsistent architecture {fields}: {reasons}", path) from err


def _tensor_shape(
    state: dict[str, torch.Tensor], key: str, ndim: int, path: Path
) -> tuple[int, ...]:
    """Shape of ``state[key]``, which must exist and have ``ndim`` dimensions."""
    if key not in state:
        raise CheckpointError(f"no tensor {key!r}: not a PatchSVAE state dict", path)
    if state[key].ndim != ndim:
        raise CheckpointError(
            f"{key} has shape {tuple(state[key].shape)}, expected {ndim} dimensions", path
        )
    return tuple(state[key].shape)


def _shape_derived_fields(state: dict[str, torch.Tensor], path: Path) -> tuple[dict[str, Any], int]:
    """→ (SphereSolverConfig fields the tensor shapes determine, V·D). D is among the fields
    only with cross-attention, whose per-row logits have length D."""
    hidden, P = _tensor_shape(state, "enc_in.weight", 2, path)
    L = _tensor_shape(state, "enc_out.weight", 2, path)[0]
    mid, C = _tensor_shape(state, "boundary_smooth.net.0.weight", 4, path)[:2]
    ps = math.isqrt(P // max(C, 1))
    if C * ps * ps != P:
        raise CheckpointError(f"enc_in reads {P} floats, not C·ps² for C={C}", path)
    found: dict[str, Any] = {
        "hidden": hidden,
        "patch_size": ps,
        "channels": C,
        "depth": _count_blocks(state, "enc_blocks"),
        "n_cross": _count_blocks(state, "cross_attn"),
        "smooth_mid": mid,
        "readout": "linear" if "readout.weight" in state else "svd",
    }
    if found["n_cross"]:
        found["D"] = _tensor_shape(state, "cross_attn.0.alpha_logits", 1, path)[0]
    return found, L


def _agreed_fields(
    found: dict[str, Any],
    config: dict[str, Any] | None,
    given: dict[str, int | None],
    path: Path,
) -> dict[str, Any]:
    """``found`` completed by the checkpoint config, then by the caller's non-None values;
    each may add fields but must repeat every value already set."""
    fields = dict(found)
    sources = {
        "the checkpoint config": _config_fields(config, path) if config else {},
        "the caller": {k: v for k, v in given.items() if v is not None},
    }
    for source, values in sources.items():
        for key, value in values.items():
            if fields.get(key, value) != value:
                raise CheckpointError(
                    f"{source} says {key}={value!r} but the weights say {fields[key]!r}", path
                )
            fields[key] = value
    return fields


def _checked_V(fields: dict[str, Any], L: int, path: Path) -> int:
    """V from ``fields``, else V·D / D; D must be known and V·D must equal ``L``."""
    if "D" not in fields:
        raise CheckpointError(
            f"D cannot be read from the weights (they give only V·D = {L}); pass D=", path
        )
    D = fields["D"]
    V = fields.get("V", L // D if D > 0 else 0)
    if V * D != L:
        raise CheckpointError(f"V={V}, D={D} but the weights have V·D = {L}", path)
    return V


def _config_fields(config: dict[str, Any], path: Path) -> dict[str, Any]:
    """Upstream training config → SphereSolverConfig fields; unsupported variants refused."""
    settings = [
        (key, config.get(key), only)
        for key, only in (("model_type", "v1"), ("row_norm", "sphere"), ("activation", "gelu"))
    ]
    activations = config.get("activations") or {}
    settings += [(f"activations[{site!r}]", name, "gelu") for site, name in activations.items()]
    for key, value, only in settings:
        if value not in (None, only):
            raise CheckpointError(f"upstream variant {key}={value!r} is not supported", path)
    if config.get("svd_mode") == "batch_shared":
        raise CheckpointError("upstream variant svd_mode='batch_shared' is not supported", path)
    fields = {
        ours: config[theirs]
        for theirs, ours in _UPSTREAM_FIELDS.items()
        if config.get(theirs) is not None
    }
    if config.get("linear_readout"):
        if not config.get("match_params", True):
            raise CheckpointError(
                "linear_readout with match_params=False (identity readout) is not supported", path
            )
        fields["readout"] = "linear"
    else:
        fields["readout"] = "svd"
    return fields


def _check_fit(
    state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], path: Path
) -> None:
    """Strict-loading check with a one-line message: missing, unexpected, wrong-shape keys."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k} {tuple(state[k].shape)} instead of {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = [
        f"{label} {', '.join(keys[:5])}{' …' if len(keys) > 5 else ''}"
        for label, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("wrong shape", wrong),
        )
        if keys
    ]
    if problems:
        raise CheckpointError("state dict does not fit: " + "; ".join(problems), path)


def _count_blocks(state: dict[str, torch.Tensor], prefix: str) -> int:
    """1 + the largest i among keys '{prefix}.{i}.…', 0 when there are none."""
    pattern = re.compile(rf"^{re.escape(prefix)}\.(\d+)\.")
    indices = [int(m.group(1)) for key in state if (m := pattern.match(key))]
    return max(indices, default=-1) + 1


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0] if text else ''}"
