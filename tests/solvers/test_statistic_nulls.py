"""Nulls that can fail: effective rank, S0/SD, codebook distance, diff/merge counts."""

from __future__ import annotations

import math

import pytest
import torch

from geolip import Codebook
from geolip.codebook.algebra import novel_count_null
from geolip.codebook.schema import ExtractionInfo
from geolip.solvers.alignment import (
    ALIGNED_Z,
    VERDICT_ALIGNED,
    VERDICT_RANDOM,
    distance_null,
)
from geolip.solvers.metrics import effective_rank
from geolip.solvers.null import null_codebook_stats, row_spectrum_null
from geolip.solvers.projective import antipodal_collapse


def test_row_spectrum_null_matches_an_independent_monte_carlo() -> None:
    null = row_spectrum_null(48, 4, n_matrices=64, n_trials=32, seed=3).summary()
    gen = torch.Generator().manual_seed(99)  # another stream, another estimator (svdvals)
    rows = torch.randn(4096, 48, 4, generator=gen, dtype=torch.float64)
    s = torch.linalg.svdvals(rows / rows.norm(dim=-1, keepdim=True))
    erank, mean_s = effective_rank(s), s.mean(dim=0)
    # the per-trial estimate is a mean over 64 matrices: its sd is the per-matrix sd / 8
    assert abs(null["effective_rank_null_mean"] - erank.mean().item()) < 0.002
    assert math.isclose(null["effective_rank_null_sd"], erank.std().item() / 8, rel_tol=0.35)
    assert abs(null["s0_over_sd_null_mean"] - (mean_s[0] / mean_s[-1]).item()) < 0.02
    assert 0 < null["s0_over_sd_null_sd"] < 0.05 and null["null_matrices"] == 64
    # the brief's measured values: i.i.d. V=48, D=4 rows give erank 3.968, S0/SD 1.39
    assert abs(null["effective_rank_null_mean"] - 3.968) < 0.003
    assert abs(null["s0_over_sd_null_mean"] - 1.39) < 0.02
    # a rank-deficient spectrum is far outside it: the null can fail
    flat = effective_rank(torch.tensor([1.0, 1.0, 0.1, 0.1], dtype=torch.float64)).item()
    assert (null["effective_rank_null_mean"] - flat) / null["effective_rank_null_sd"] > 50


def test_codebook_effective_rank_null_has_sd_and_percentile_that_can_fail() -> None:
    q = Codebook.random(48, 4, seed=1).assess(null_trials=100, seed=7)
    assert q.effective_rank_null_trials == 100 and 0.005 < q.effective_rank_null_sd < 0.03
    assert abs(q.effective_rank - q.effective_rank_null_mean) < 3 * q.effective_rank_null_sd
    assert 1 < q.effective_rank_percentile < 99
    # 48 axes crowded near a plane of R^4: low erank, at the bottom of the null
    gen = torch.Generator().manual_seed(2)
    rows = torch.randn(48, 4, generator=gen, dtype=torch.float64) * torch.tensor([1, 1, 0.1, 0.1])
    flat = Codebook.from_axes(rows).assess(null_trials=100, seed=7)
    assert flat.effective_rank_percentile == 0.0
    assert flat.effective_rank < flat.effective_rank_null_mean - 10 * flat.effective_rank_null_sd


def test_distance_null_of_identical_codebooks_is_zero_and_far_below_the_null() -> None:
    a = Codebook.random(16, 4, seed=1)
    res = a.align(a, null_trials=8, seed=0)
    assert res.rms_chordal < 1e-6 and res.distance_percentile == 0.0
    assert res.distance_z is not None and res.distance_z < -5
    null = distance_null(16, 16, 4, null_trials=8, seed=0)
    assert torch.equal(null, res.null_distances) and null.min() > 0.2
    assert res.null_distance_mean == null.mean().item()


def test_rotated_copy_aligns_beyond_chance_and_random_pairs_do_not() -> None:
    a = Codebook.random(20, 4, seed=3)
    q, _ = torch.linalg.qr(torch.randn(4, 4, generator=torch.Generator().manual_seed(4)))
    rotated = Codebook.from_axes(a.axes.double() @ q.double().T)
    copy = a.align(rotated, null_trials=8, seed=0)
    assert copy.z_score <= ALIGNED_Z and copy.verdict == VERDICT_ALIGNED
    for seed in (5, 6):
        other = a.align(Codebook.random(20, 4, seed=seed), null_trials=8, seed=0)
        assert other.z_score > ALIGNED_Z and other.verdict == VERDICT_RANDOM
        assert 1 < other.distance_percentile < 99 or abs(other.distance_z) < 3
    assert a.align(rotated, null_trials=0).verdict is None


def test_novel_count_null_matches_random_pairs_and_fails_for_copies() -> None:
    a, b = Codebook.random(24, 4, seed=1), Codebook.random(24, 4, seed=2)
    null = novel_count_null(a, 24, tol_deg=5.0, n_trials=6, seed=0)
    # a random partner leaves most of a's axes unmatched within 5° (not all: alignment helps)
    assert 12 < null["diff_mean"] <= 24 and 12 < null["merge_mean"] <= 24
    assert abs(len(a.diff(b)) - null["diff_mean"]) < 4 * max(null["diff_sd"], 1.0)
    assert len(a.diff(a)) == 0 and null["diff_mean"] - 0 > 4 * max(null["diff_sd"], 1.0)
    assert null["inliers_p95"] < 24  # a copy (24 inliers of 24) is outside the inlier null
    unaligned = novel_count_null(a, 24, tol_deg=5.0, align=False, n_trials=4, seed=0)
    assert unaligned["inliers_mean"] is None and unaligned["diff_mean"] > 20


def test_extracted_codebook_effective_rank_is_placed_among_collapsed_random_rows() -> None:
    """An extraction's effective rank is read against codebooks collapsed from V random rows
    (the same draws as its deviation null), not against K uniform axes: random rows collapsed
    the same way sit inside that null, and the K-axes null would call them extreme."""
    gen = torch.Generator().manual_seed(3)
    collapse = antipodal_collapse(torch.randn(32, 4, generator=gen, dtype=torch.float64), -0.9)
    info = ExtractionInfo(
        calibration="gaussian",
        n=1,
        seed=3,
        aggregation="mean",
        pair_threshold=-0.9,
        n_rows=32,
        n_pairs=collapse.n_pairs,
    )
    extracted = Codebook.from_axes(collapse.axes).with_meta(extraction=info)
    q = extracted.assess(null_trials=200, seed=5)
    null = null_codebook_stats(32, 4, n_trials=200, kind="rows", threshold=-0.9, seed=5)
    assert q.null.kind == "rows" and q.effective_rank_null_trials == 200
    assert q.effective_rank_null_mean == pytest.approx(float(null.effective_rank.mean()))
    assert q.effective_rank_percentile == null.percentile(q.effective_rank, "effective_rank")
    assert 2.5 < q.effective_rank_percentile < 97.5
    # the null itself: each trial's erank is that of the axes its collapse produced
    first = antipodal_collapse(
        torch.randn(32, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64), -0.9
    )
    unit = first.axes / first.axes.norm(dim=-1, keepdim=True)
    assert null.effective_rank[0] == pytest.approx(
        effective_rank(torch.linalg.svdvals(unit)).item()
    )
