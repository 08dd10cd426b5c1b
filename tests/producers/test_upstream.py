"""Loading upstream PatchSVAE checkpoints: training snapshots, bare state dicts, safetensors;
config inference from shapes; refusal of corrupt, foreign, inconsistent and pickled files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import safetensors.torch
import torch
from strategies import gen

from geolip.errors import CheckpointError, CheckpointNotFoundError
from geolip.producers.sphere_solver import SphereSolver, SphereSolverConfig
from geolip.producers.upstream import load_upstream

SVD = dict(V=6, D=4, patch_size=2, hidden=16, depth=2, n_cross=2, n_heads=4, smooth_mid=5)
LINEAR = dict(V=8, D=2, patch_size=2, hidden=8, depth=1, n_cross=0, readout="linear")


class NotATensor:
    """Any class: torch.load(weights_only=True) must refuse to unpickle it."""


def trained(fields: dict[str, Any], seed: int = 0) -> SphereSolver:
    """A model whose every parameter is random (so the zero-init smoother counts too)."""
    torch.manual_seed(seed)
    model = SphereSolver(SphereSolverConfig(**fields))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


def upstream_config(c: SphereSolverConfig) -> dict[str, Any]:
    """The training config upstream's train.py stores beside the weights."""
    return {
        "V": c.V,
        "D": c.D,
        "patch_size": c.patch_size,
        "hidden": c.hidden,
        "depth": c.depth,
        "n_cross_layers": c.n_cross,
        "n_heads": c.n_heads,
        "smooth_mid": c.smooth_mid,
        "linear_readout": c.readout == "linear",
        "match_params": True,
        "svd_mode": "none" if c.readout == "linear" else "default",
        "target_cv": 0.125,
        "lr": 1e-4,
        "dataset": "noise",
        "img_size": 64,
    }


def snapshot(model: SphereSolver, **config_changes: Any) -> dict[str, Any]:
    """A training snapshot as upstream saves it: weights, config, Adam state, epoch."""
    opt = torch.optim.Adam(model.parameters())
    model(images()).get("recon").square().mean().backward()
    opt.step()
    return {
        "model_state_dict": model.state_dict(),
        "config": upstream_config(model.config) | config_changes,
        "optimizer_state_dict": opt.state_dict(),
        "epoch": 7,
        "test_mse": 0.01,
    }


def images() -> torch.Tensor:
    return torch.randn(2, 3, 10, 6, generator=gen(0))


def assert_same_model(loaded: SphereSolver, model: SphereSolver) -> None:
    def architecture(c: SphereSolverConfig) -> tuple:
        return c.model_dump(exclude={"n_heads", "smooth_mid"}), c.heads, c.mid

    assert architecture(loaded.config) == architecture(model.config)
    x = images()
    got, want = loaded(x), model(x)
    for key in want:
        assert torch.equal(got[key], want[key]), key


@pytest.mark.slow
@pytest.mark.parametrize("fields", [SVD, LINEAR])
def test_training_snapshot_reproduces_the_forward_pass(tmp_path: Path, fields: dict) -> None:
    model = trained(fields)
    path = tmp_path / "best.pt"
    torch.save(snapshot(model), path)
    loaded = load_upstream(str(path))
    assert not loaded.training
    assert_same_model(loaded, model)


def test_snapshot_without_n_heads_uses_the_upstream_default(tmp_path: Path) -> None:
    model = trained(SVD | {"n_heads": None})  # D=4 → 2 heads by upstream's rule
    torch.save(snapshot(model), tmp_path / "a.pt")
    assert_same_model(load_upstream(tmp_path / "a.pt"), model)


def test_safetensors_config_is_inferred_from_shapes(tmp_path: Path) -> None:
    model = trained(SVD)
    path = tmp_path / "fresnel.safetensors"
    safetensors.torch.save_file(model.state_dict(), path)
    assert_same_model(load_upstream(path, n_heads=4), model)
    with pytest.raises(CheckpointError, match=r"fresnel.safetensors: .*pass n_heads="):
        load_upstream(path)
    with pytest.raises(CheckpointError, match="the caller says D=3 but the weights say 4"):
        load_upstream(path, D=3, n_heads=1)


def test_bare_state_dict_without_attention_needs_d(tmp_path: Path) -> None:
    model = trained(LINEAR)
    path = tmp_path / "h2a.pt"
    torch.save(model.state_dict(), path)
    with pytest.raises(CheckpointError, match=r"h2a.pt: D cannot be read .* V·D = 16"):
        load_upstream(path)
    with pytest.raises(CheckpointError, match="V=5, D=3 but the weights have V·D = 16"):
        load_upstream(path, D=3)
    assert_same_model(load_upstream(path, D=2), model)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"patch_size": 4}, "config says patch_size=4 but the weights say 2"),
        ({"n_cross_layers": 1}, "config says n_cross=1 but the weights say 2"),
        ({"linear_readout": True}, "config says readout='linear' but the weights say 'svd'"),
        ({"V": 3}, "V=3, D=4 but the weights have V·D = 24"),
        ({"n_heads": 3}, "inconsistent architecture.*n_heads=3 must divide D=4"),
        ({"model_type": "v2"}, "model_type='v2' is not supported"),
        ({"row_norm": "layernorm"}, "row_norm='layernorm' is not supported"),
        ({"activations": {"dec_in": "relu"}}, "activations\\['dec_in'\\]='relu' is not supported"),
        ({"svd_mode": "batch_shared"}, "batch_shared"),
        ({"linear_readout": True, "match_params": False}, "identity readout"),
    ],
)
def test_config_that_contradicts_or_exceeds_the_weights_is_refused(
    tmp_path: Path, change: dict, message: str
) -> None:
    path = tmp_path / "ckpt.pt"
    torch.save(snapshot(trained(SVD), **change), path)
    with pytest.raises(CheckpointError, match=f"ckpt.pt: .*{message}"):
        load_upstream(path)


def edited(state: dict[str, torch.Tensor], key: str, value: torch.Tensor | None) -> dict:
    out = dict(state)
    if value is None:
        del out[key]
    else:
        out[key] = value
    return out


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            ("dec_out.weight", torch.zeros(5, 16)),
            r"wrong shape dec_out.weight \(5, 16\) instead of \(12, 16\)",
        ),
        (("dec_blocks.1.3.bias", None), "missing dec_blocks.1.3.bias"),
        (
            ("enc_blocks.0.2.weight", torch.zeros(3)),
            "unexpected enc_blocks.0.2.weight",
        ),
        (("cross_attn.1.alpha_logits", torch.full((4,), float("nan"))), "non-finite"),
        (("enc_out.bias", torch.zeros(24, dtype=torch.int64)), "non-float"),
        (("enc_in.weight", torch.zeros(16)), "enc_in.weight has shape \\(16,\\)"),
        (("enc_in.weight", None), "no tensor 'enc_in.weight': not a PatchSVAE state dict"),
    ],
)
def test_wrong_keys_and_shapes_are_refused(tmp_path: Path, edit: tuple, message: str) -> None:
    path = tmp_path / "edited.safetensors"
    safetensors.torch.save_file(edited(trained(SVD).state_dict(), *edit), path)
    with pytest.raises(CheckpointError, match=f"edited.safetensors: .*{message}"):
        load_upstream(path, n_heads=4)


def test_unreadable_and_foreign_files_are_refused(tmp_path: Path) -> None:
    good = tmp_path / "good.pt"
    torch.save(snapshot(trained(SVD)), good)
    cases = {
        "random.pt": torch.randn(256, generator=gen(1)).numpy().tobytes(),
        "truncated.pt": good.read_bytes()[: good.stat().st_size // 2],
        "truncated.safetensors": good.read_bytes()[:100],
        "empty.safetensors": b"",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    torch.save(
        {"model_state_dict": trained(SVD).state_dict(), "config": NotATensor()},
        tmp_path / "pickled.pt",
    )
    torch.save({"weight": torch.zeros(3, 3)}, tmp_path / "foreign.pt")
    torch.save({"epoch": 3, "optimizer": {}}, tmp_path / "nostate.pt")
    torch.save({"model_state_dict": trained(SVD).state_dict(), "config": [1]}, tmp_path / "cfg.pt")
    expected = {
        "random.pt": "unreadable torch checkpoint",
        "truncated.pt": "unreadable torch checkpoint",
        "truncated.safetensors": "unreadable safetensors file",
        "empty.safetensors": "unreadable safetensors file",
        "pickled.pt": "holds a pickled test_upstream.NotATensor, which weights_only",
        "foreign.pt": "no tensor 'enc_in.weight'",
        "nostate.pt": "holds no state dict of tensors",
        "cfg.pt": "'config' is a list",
    }
    for name, message in expected.items():
        with pytest.raises(CheckpointError, match=f"{name}: {message}"):
            load_upstream(tmp_path / name)
    with pytest.raises(CheckpointNotFoundError, match=r"missing\.pt: no such checkpoint file"):
        load_upstream(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="D must be ≥ 1"):
        load_upstream(good, D=0)
