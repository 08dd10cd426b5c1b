"""CV-battery autoencoder: the VAE pieces, the differentiable CV loss and its phases, the
control without it, training and resume, save and load, extraction with its nulls."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from geolip.errors import TrainingInterrupted
from geolip.producers.contract import Monitored, Phased, Producer, Reconstructor, Trainable
from geolip.producers.cv_battery import CVBattery, CVBatteryConfig
from geolip.producers.extract import extract_codebook
from geolip.producers.loading import load_producer
from geolip.producers.presets import build, train_config
from geolip.producers.train import Trainer
from geolip.solvers.metrics import pentachoron_cv, pentachoron_cv_batch

TINY = {"patch_size": 2, "hidden": 16, "n_blocks": 2, "V": 6, "D": 4, "cv_matrices": 8}
TINY_TRAIN = {
    "batch_size": 4,
    "img_size": 8,
    "epochs": 2,
    "steps_per_epoch": 3,
    "eval_per_type": 2,
    "noises": ("gaussian", "uniform"),
}


def tiny(seed: int = 0, preset: str = "cv-battery", **overrides: object) -> CVBattery:
    model = build(preset, seed=seed, **{**TINY, **overrides})
    assert isinstance(model, CVBattery)
    return model


def test_shapes_of_the_rows_the_latents_and_the_reconstruction() -> None:
    model = tiny()
    x = torch.randn(3, 3, 7, 8)  # padded to 8 × 8: 16 patches of 2 × 2
    out = model(x)
    assert out["recon"].shape == x.shape and out["M"].shape == (3, 16, 2, 6, 4)
    assert out["mu"].shape == out["log_sigma"].shape == (3, 16, 2, 4)
    assert out["S"].shape == (3, 16, 2, 4) and out["aux_loss"].ndim == 0
    rows = model.encode_rows(x)
    assert rows.shape == (3, 16, 12, 4)
    torch.testing.assert_close(rows, out["M"].flatten(2, 3))
    torch.testing.assert_close(rows.norm(dim=-1), torch.ones(3, 16, 12))
    assert isinstance(model, Producer) and isinstance(model, Trainable)
    assert isinstance(model, Phased) and isinstance(model, Monitored)
    assert not isinstance(model, Reconstructor)  # no decode path from unit rows alone


def test_eval_decodes_the_mean_and_training_samples_the_latent() -> None:
    model = tiny()
    x = torch.randn(2, 3, 4, 4)
    model.eval()
    assert torch.equal(model(x)["recon"], model(x)["recon"]) and "aux_loss" not in model(x)
    model.train()
    torch.manual_seed(0)
    a = model(x)["recon"]
    torch.manual_seed(1)
    assert not torch.equal(a, model(x)["recon"])


def test_kl_is_zero_exactly_at_the_prior() -> None:
    model = tiny()
    for readout in (model.readout_mu, model.readout_log_sigma):
        torch.nn.init.zeros_(readout.weight)
        torch.nn.init.zeros_(readout.bias)
    assert model(torch.randn(2, 3, 4, 4))["kl"].item() == 0.0


def test_the_differentiable_cv_matches_the_measured_one_and_carries_a_gradient() -> None:
    g = torch.Generator().manual_seed(0)
    rows = torch.nn.functional.normalize(
        torch.randn(32, 6, dtype=torch.float64, generator=g), dim=-1
    )
    rows.requires_grad_(True)
    batch = pentachoron_cv_batch(
        rows[None].expand(3, -1, -1), 200, torch.Generator().manual_seed(1)
    )
    measured = pentachoron_cv(rows.detach(), 200, torch.Generator().manual_seed(1))
    assert batch.shape == (3,) and batch[0].item() == pytest.approx(measured, rel=1e-6)
    batch.sum().backward()
    assert rows.grad is not None and rows.grad.abs().sum() > 0
    scaled = pentachoron_cv_batch(3 * rows.detach(), 200, torch.Generator().manual_seed(1))
    assert scaled.item() == pytest.approx(batch[0].item(), rel=1e-6)
    with pytest.raises(ValueError, match="D ≥ 4"):
        pentachoron_cv_batch(torch.randn(8, 3))


def test_the_cv_weight_follows_the_phases_and_the_control_has_none() -> None:
    model = tiny(align_epochs=2)
    assert model._cv_weight == 20.0
    model.start_epoch(1)
    assert model._cv_weight == 20.0
    model.start_epoch(2)
    assert model._cv_weight == 10.0
    control = tiny(preset="cv-battery-nocv").train()
    out = control(torch.randn(2, 3, 4, 4))
    assert out["cv_loss"].item() == 0.0
    torch.testing.assert_close(out["aux_loss"], control.config.kl_weight * out["kl"])


def test_one_training_step_lowers_the_loss(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = tiny()
    trainer = Trainer(model, train_config("cv-battery", **{**TINY_TRAIN, "lr": 3e-3}), tmp_path)
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    model.train()
    torch.manual_seed(5)  # the same latent noise and CV draws for each of the three passes
    before = trainer._loss(x).item()
    torch.manual_seed(5)
    trainer.optimisation_step(x)
    torch.manual_seed(5)
    assert trainer._loss(x).item() < before


def test_save_pretrained_and_checkpoints_load_through_load_producer(tmp_path: Path) -> None:
    model = tiny(seed=4).eval()
    x = torch.randn(2, 3, 8, 8)
    loaded = load_producer(model.save_pretrained(tmp_path / "saved"))
    assert isinstance(loaded, CVBattery) and loaded.config == model.config
    assert loaded.producer_id == model.producer_id and loaded.preset == "cv-battery"
    with torch.no_grad():
        assert torch.equal(loaded(x)["recon"], model(x)["recon"])
        assert torch.equal(loaded.encode_rows(x), model.encode_rows(x))


def test_rows_go_through_extraction_with_the_usual_nulls() -> None:
    cb = extract_codebook(tiny().eval(), "gaussian", n=4, size=8, null_trials=10, controls=False)
    assert cb.dim == 4 and cb.meta.extraction.n_rows == 12 and cb.meta.quality.null is not None


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"D": 3}, "D"),
        ({"V": 4}, "V"),
        ({"cv_target": 0.0}, "cv_target"),
        ({"kl_weight": -1.0}, "kl_weight"),
        ({"cv_samples": 1}, "cv_samples"),
    ],
)
def test_bad_configs_are_refused_naming_the_field(fields: dict[str, object], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        CVBatteryConfig(**{**TINY, **fields})


def test_bad_inputs_are_refused_naming_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="expected 3 channels, got 1"):
        tiny()(torch.randn(2, 1, 8, 8))
    with pytest.raises(ValueError, match="smaller than one 2×2 patch"):
        tiny()(torch.randn(2, 3, 1, 8))


def run(out: Path, resume: bool = False, **overrides: object) -> Trainer:
    torch.manual_seed(0)  # latent noise and CV draws come from the global RNG (resume restores it)
    config = train_config("cv-battery", **{**TINY_TRAIN, **overrides})
    trainer = Trainer(tiny(), config, out, resume=resume)
    trainer.fit(progress=False)
    return trainer


def test_each_epoch_logs_the_cv_beside_its_target_and_the_uniform_rows(tmp_path: Path) -> None:
    (last,) = run(tmp_path, epochs=1, steps_per_epoch=1).history
    assert set(last["mse_per_type"]) == {"gaussian", "uniform"} and last["kl"] > 0
    assert last["cv_target"] == 0.215 and last["cv_weight"] == 20.0
    assert 0 < last["cv"] < 2 and 0.5 < last["cv_uniform"] < 1.5  # V 6 in D 4


@pytest.mark.slow
def test_ctrl_c_then_resume_equals_the_uninterrupted_run(tmp_path: Path, monkeypatch) -> None:
    full = run(tmp_path / "full", save_every=2)
    assert [h["cv_weight"] for h in full.history] == [20.0, 10.0]
    real_step = Trainer.train_step

    def interrupted_step(self: Trainer) -> torch.Tensor:
        if self.step == 4:
            raise KeyboardInterrupt
        return real_step(self)

    monkeypatch.setattr(Trainer, "train_step", interrupted_step)
    with pytest.raises(TrainingInterrupted):
        run(tmp_path / "cut", save_every=2)
    monkeypatch.setattr(Trainer, "train_step", real_step)
    resumed = run(tmp_path / "cut", resume=True, save_every=2)
    a = load_file(tmp_path / "full" / "latest" / "model.safetensors")
    b = load_file(tmp_path / "cut" / "latest" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.history == full.history
