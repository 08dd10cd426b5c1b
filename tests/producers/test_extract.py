"""Codebook extraction from a producer: settings, stats, the i.i.d. null and both controls."""

from __future__ import annotations

import pytest
import torch

from geolip import Codebook
from geolip.data.noise import calibration_set
from geolip.producers.controls import (
    IID_CALIBRATIONS,
    control_inputs,
    other_calibration,
    shuffle_pixels,
    skipped_controls,
)
from geolip.producers.extract import extract_codebook
from geolip.producers.presets import build
from geolip.producers.rows import aggregate_rows, collect_rows
from geolip.producers.sphere_solver import SphereSolver

TINY = {"V": 12, "D": 4, "patch_size": 4, "hidden": 16, "depth": 1, "n_cross": 1}


def tiny_solver(seed: int = 0) -> SphereSolver:
    torch.manual_seed(seed)
    return build("h2", **TINY)


@pytest.mark.slow
def test_extraction_records_settings_stats_null_and_controls() -> None:
    model = tiny_solver()
    cb = extract_codebook(model, "sixteen_noise", n=17, seed=3, size=16, null_trials=50)
    meta = cb.meta
    assert meta.lineage.operation == "extract"
    ext = meta.extraction
    assert (ext.calibration, ext.n, ext.seed, ext.aggregation, ext.n_rows) == (
        "sixteen_noise",
        17,
        3,
        "mean",
        12,
    )
    assert cb.size == 12 - ext.n_pairs
    assert meta.producer.kind == "sphere_solver" and meta.producer.weights_sha256
    stats = cb.stats
    # usage counts every row of every patch of every calibration image exactly once
    assert stats["usage"].sum().item() == 17 * (16 // 4) ** 2 * 12
    assert stats["pair_flag"].sum().item() == ext.n_pairs
    assert ((stats["stability"] >= 0) & (stats["stability"] <= 1 + 1e-6)).all()
    q = meta.quality
    assert q.null.kind == "rows" and q.null.n_trials == 50
    names = ["untrained", "other_calibration", "constant_input", "shuffled_calibration"]
    assert [c.name for c in q.controls] == names and q.controls_skipped == []
    for control in q.controls:
        assert 0 <= control.null_percentile <= 100 and 0 <= control.distance_to_observed <= 2**0.5
        # the distance null: i.i.d. pairs of K ~ 10 axes in R^4 sit ~0.5 apart, never 0
        assert 0.3 < control.distance_null_mean < 0.7 and control.distance_null_sd > 0
        assert control.distance_null_trials == 16
        z = (control.distance_to_observed - control.distance_null_mean) / control.distance_null_sd
        assert control.distance_z == z and 0 <= control.distance_percentile <= 100
    # the control that re-calibrates the same network lands closer than chance; the others not
    other = q.controls[1]
    assert other.distance_z < -2 and other.distance_percentile == 0
    assert q.effective_rank_null_trials == 50 and q.effective_rank_null_sd > 0
    # the erank of K ~ 10 axes in R^4 is i.i.d.-like: within 4 null sds of the null mean
    assert abs(q.effective_rank - q.effective_rank_null_mean) < 4 * q.effective_rank_null_sd


@pytest.mark.slow
def test_iid_calibration_skips_the_shuffle_with_a_reason_and_runs_the_others() -> None:
    cb = extract_codebook(tiny_solver(), "gaussian", n=8, size=16, null_trials=20)
    q = cb.meta.quality
    assert [c.name for c in q.controls] == ["untrained", "other_calibration", "constant_input"]
    assert [s.name for s in q.controls_skipped] == ["shuffled_calibration"]
    assert "i.i.d." in q.controls_skipped[0].reason


@pytest.mark.parametrize("calibration", ["gaussian", "uniform", "sixteen_noise", "ood_sixteen"])
def test_every_calibration_control_changes_its_input(calibration: str) -> None:
    images = calibration_set(calibration, 8, size=16, seed=4)[0]
    runs, skipped = control_inputs(calibration, images, seed=4), skipped_controls(calibration)
    assert other_calibration(calibration) != calibration
    for name, (inputs, _) in runs.items():
        assert inputs.shape == images.shape and inputs.dtype == images.dtype, name
        assert (inputs - images).abs().max() > 0.5, name  # really another input
    assert torch.equal(runs["constant_input"][0], torch.zeros_like(images))
    assert runs["other_calibration"][0].std() > 0.1  # not itself a constant control
    iid = calibration in IID_CALIBRATIONS
    assert ("shuffled_calibration" in runs) is not iid
    assert [s.name for s in skipped] == (["shuffled_calibration"] if iid else [])
    if not iid:  # the shuffle keeps each image-channel's values but moves them
        shuffled = runs["shuffled_calibration"][0]
        assert torch.equal(shuffled.flatten(2).sort(-1).values, images.flatten(2).sort(-1).values)


def test_extraction_is_deterministic_and_leaves_global_rng_alone() -> None:
    model = tiny_solver()
    state = torch.get_rng_state()
    a = extract_codebook(model, "gaussian", n=8, size=16, null_trials=20, controls=False)
    assert torch.equal(torch.get_rng_state(), state)
    b = extract_codebook(model, "gaussian", n=8, size=16, null_trials=20, controls=False)
    assert a.id == b.id
    c = extract_codebook(model, "gaussian", n=8, seed=1, size=16, null_trials=20, controls=False)
    assert c.id != a.id  # another calibration draw moves the mean rows


def test_aggregation_matches_manual_mean_and_median() -> None:
    m = torch.randn(5, 7, 3, 4)
    assert torch.allclose(aggregate_rows(m), m.double().mean(dim=(0, 1)))
    med = m.double().median(dim=1).values.median(dim=0).values
    assert torch.equal(aggregate_rows(m, "median"), med)


def test_collect_rows_is_batch_size_independent() -> None:
    model = tiny_solver().eval()
    x = torch.randn(7, 3, 8, 8)
    assert torch.allclose(collect_rows(model, x, 2), collect_rows(model, x, 16), atol=1e-6)


def test_shuffle_keeps_values_per_channel_and_destroys_structure() -> None:
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    y = shuffle_pixels(x, seed=0)
    assert torch.equal(y.flatten(2).sort(dim=-1).values, x.flatten(2).sort(dim=-1).values)
    assert not torch.equal(x, y)


def test_untrained_twin_is_same_architecture_other_weights() -> None:
    model = tiny_solver(0)
    twin = model.untrained_twin(5)
    assert twin.config == model.config
    assert not torch.equal(twin.enc_in.weight, model.enc_in.weight)
    assert torch.equal(model.untrained_twin(5).enc_in.weight, twin.enc_in.weight)


@pytest.mark.slow
def test_extracted_codebook_round_trips(tmp_path) -> None:
    cb = extract_codebook(tiny_solver(), "uniform", n=4, size=8, null_trials=20)
    cb.save(tmp_path / "cb")
    loaded = Codebook.load(tmp_path / "cb")
    assert loaded.id == cb.id and loaded.meta == cb.meta
    q = loaded.meta.quality  # observed, untrained and control reports all came back
    assert [c.name for c in q.controls] == ["untrained", "other_calibration", "constant_input"]
    assert q.controls == cb.meta.quality.controls and q.controls_skipped
    assert all(c.distance_null_mean is not None for c in q.controls)
