"""Tests of geolip.solvers.null against the spec §B.4 table and the percentile's definition."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from geolip.solvers.null import NullDistribution, null_codebook_stats, null_percentile
from geolip.solvers.projective import CLEAN_TOLERANCE


def make_null(deviation: list[float]) -> NullDistribution:
    values = np.asarray(deviation, dtype=np.float64)
    return NullDistribution(
        kind="axes",
        n=10,
        dim=4,
        threshold=None,
        seed=0,
        pairs=np.zeros_like(values),
        axes=np.full_like(values, 10.0),
        deviation=values,
        effective_rank=np.full_like(values, 4.0),
    )


# --- spec §B.4 -----------------------------------------------------------------------------------


def test_v32_d4_reproduces_spec_b4() -> None:
    null = null_codebook_stats(32, 4)
    assert null.n_trials == 300
    assert null.pairs.mean() == pytest.approx(5.96, abs=0.3)
    assert null.axes.mean() == pytest.approx(26.0, abs=0.3)
    assert null.deviation.mean() == pytest.approx(0.0101, abs=0.005)
    assert null.deviation.std(ddof=1) == pytest.approx(0.0128, abs=0.003)
    assert null.clean_fraction == 1.0


@pytest.mark.slow
@pytest.mark.parametrize(("dim", "pairs", "axes"), [(3, 8.97, 23.0), (5, 2.91, 29.1)])
def test_pair_counts_fall_with_dimension_as_in_spec_b4(dim: int, pairs: float, axes: float) -> None:
    null = null_codebook_stats(32, dim)
    assert null.pairs.mean() == pytest.approx(pairs, abs=0.3)
    assert null.axes.mean() == pytest.approx(axes, abs=0.3)


@pytest.mark.slow
def test_v48_d4_and_v256_d16_reproduce_spec_b4() -> None:
    v48 = null_codebook_stats(48, 4)
    assert v48.pairs.mean() == pytest.approx(10.98, abs=0.4)
    assert v48.deviation.mean() == pytest.approx(0.0080, abs=0.004)
    v256 = null_codebook_stats(256, 16)
    assert v256.pairs.mean() < 0.1
    assert abs(v256.deviation.mean()) < 0.0005
    assert v256.deviation.std(ddof=1) == pytest.approx(0.0009, abs=0.0003)
    assert v256.clean_fraction == 1.0


def test_upstream_a2_deviation_sits_inside_the_null() -> None:
    # Spec §B.3 A2: h2-64 banks at D=4, V=32 report deviation +0.010, "learned structure".
    assert 25.0 < null_codebook_stats(32, 4).percentile(0.010) < 75.0


# --- invariants of the two kinds -----------------------------------------------------------------


@pytest.mark.parametrize(("n", "dim"), [(32, 3), (32, 4), (48, 4)])
def test_rows_null_axes_are_rows_minus_pairs(n: int, dim: int) -> None:
    null = null_codebook_stats(n, dim)
    np.testing.assert_array_equal(null.axes, n - null.pairs)
    assert (null.pairs >= 0).all()
    assert null.threshold == -0.9


def test_stricter_threshold_merges_fewer_pairs() -> None:
    loose = null_codebook_stats(32, 4, n_trials=100, threshold=-0.8)
    strict = null_codebook_stats(32, 4, n_trials=100, threshold=-0.95)
    assert (strict.pairs <= loose.pairs).all()  # same draws: a stricter test never adds pairs
    assert strict.pairs.mean() < loose.pairs.mean()


@pytest.mark.parametrize(("k", "dim"), [(26, 4), (100, 8)])
def test_axes_null_has_no_pairs_and_unbiased_deviation(k: int, dim: int) -> None:
    null = null_codebook_stats(k, dim, kind="axes")
    assert null.threshold is None
    assert (null.pairs == 0).all()
    assert (null.axes == k).all()
    # The baseline is the exact mean projective angle, so the mean deviation is 0 in law.
    stderr = null.deviation.std(ddof=1) / math.sqrt(null.n_trials)
    assert abs(null.deviation.mean()) < 4 * stderr


def test_axes_null_ignores_threshold() -> None:
    assert null_codebook_stats(20, 4, kind="axes", threshold=-0.5) is null_codebook_stats(
        20, 4, kind="axes"
    )


# --- determinism and cache -----------------------------------------------------------------------


def test_cache_returns_the_identical_object() -> None:
    a = null_codebook_stats(16, 4, n_trials=50, seed=7)
    assert null_codebook_stats(16, 4, n_trials=50, seed=7) is a
    assert null_codebook_stats(n=16, dim=4, n_trials=50, kind="rows", seed=7) is a


def test_deterministic_under_seed_without_the_cache() -> None:
    from geolip.solvers import null as null_module

    uncached = null_module._null_codebook_stats.__wrapped__
    a = uncached(16, 4, 50, "rows", -0.9, 7)
    b = uncached(16, 4, 50, "rows", -0.9, 7)
    assert a is not b
    for name in ("pairs", "axes", "deviation"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    c = null_codebook_stats(16, 4, n_trials=50, seed=8)
    assert not np.array_equal(a.deviation, c.deviation)


def test_result_is_frozen_and_read_only() -> None:
    null = null_codebook_stats(16, 4, n_trials=20)
    with pytest.raises(dataclasses.FrozenInstanceError):
        null.seed = 3  # type: ignore[misc]
    with pytest.raises(ValueError):
        null.deviation[0] = 1.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n": 32, "dim": 4, "kind": "pairs"},
        {"n": 2, "dim": 4},
        {"n": 1, "dim": 4, "kind": "axes"},
        {"n": 32, "dim": 1},
        {"n": 32, "dim": 4, "n_trials": 1},
    ],
)
def test_invalid_arguments_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        null_codebook_stats(**kwargs)


# --- summary and percentile ----------------------------------------------------------------------


def test_summary_is_json_and_matches_the_arrays() -> None:
    null = null_codebook_stats(32, 4)
    summary = json.loads(json.dumps(null.summary()))
    assert summary["n_trials"] == 300
    assert summary["clean_fraction"] == null.clean_fraction
    for name in ("pairs", "axes", "deviation"):
        values = getattr(null, name)
        assert summary[name]["mean"] == pytest.approx(values.mean(), rel=1e-12)
        assert summary[name]["sd"] == pytest.approx(values.std(ddof=1), rel=1e-12)
        assert summary[name]["p5"] <= summary[name]["mean"] <= summary[name]["p95"]
    assert summary["pairs"]["p5"] == pytest.approx(4, abs=1)  # spec §B.4: 4–8
    assert summary["pairs"]["p95"] == pytest.approx(8, abs=1)


def test_clean_fraction_counts_the_tolerance_strictly() -> None:
    null = make_null([0.0, CLEAN_TOLERANCE, -CLEAN_TOLERANCE, 0.01])
    assert null.clean_fraction == 0.5


def test_percentile_bounds_and_median() -> None:
    null = make_null([-2.0, -1.0, 0.0, 1.0, 2.0])
    assert null.percentile(-2.5) == 0.0
    assert null.percentile(2.5) == 100.0
    assert null.percentile(0.0) == 50.0
    assert null.percentile(-math.inf) == 0.0
    assert null_percentile(0.0, null) == 50.0
    assert make_null([0.3] * 4).percentile(0.3) == 50.0


def test_percentile_of_other_statistics() -> None:
    null = null_codebook_stats(32, 4)
    assert null.percentile(0.0, "pairs") == 0.0
    assert null.percentile(33.0, "axes") == 100.0
    with pytest.raises(ValueError):
        null.percentile(1.0, "angle")
    with pytest.raises(ValueError):
        null.percentile(math.nan)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(-20, 20).map(lambda i: i / 10), min_size=2, max_size=40),
    st.floats(-3, 3),
    st.floats(0, 2),
)
def test_percentile_is_monotone_mid_rank(values: list[float], x: float, step: float) -> None:
    null = make_null(values)
    p = null.percentile(x)
    assert 0.0 <= p <= 100.0
    assert null.percentile(x + step) >= p
    assert p == pytest.approx(stats.percentileofscore(values, x, kind="mean"), abs=1e-9)
    assert null_percentile(x, null) == p
