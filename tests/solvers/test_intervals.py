"""Confidence intervals and three-way verdicts: published values, coverage, and the two cases
that used to be called fails while their interval straddled the threshold."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import binom, spearmanr

from geolip.solvers.intervals import (
    at_least,
    combine,
    difference_interval,
    spearman_interval,
    wilson_interval,
    within,
)


def test_newcombe_published_example() -> None:
    """Newcombe (1998), Statistics in Medicine 17:873, example (a): 56/70 − 48/80, method 10
    gives 0.0524 to 0.3339."""
    lo, hi = difference_interval(48, 80, 56, 70)
    assert lo == pytest.approx(0.0524, abs=5e-4) and hi == pytest.approx(0.3339, abs=5e-4)


def test_wilson_published_example() -> None:
    """Newcombe (1998b) example: 81/263 → Wilson 0.2553 to 0.3662."""
    lo, hi = wilson_interval(81, 263)
    assert lo == pytest.approx(0.2553, abs=5e-4) and hi == pytest.approx(0.3662, abs=5e-4)


@given(st.integers(1, 500).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_lies_in_the_unit_interval_around_the_estimate(case: tuple[int, int]) -> None:
    k, n = case
    lo, hi = wilson_interval(k, n)
    assert 0 <= lo <= k / n <= hi <= 1 and hi - lo > 0


def test_wilson_covers_at_its_level_on_average() -> None:
    """Exact coverage (binomial sums), averaged over p: Wilson's oscillates around 95 %."""
    n = 60
    bounds = [wilson_interval(k, n) for k in range(n + 1)]
    coverage = [
        sum(binom.pmf(k, n, p) for k, (lo, hi) in enumerate(bounds) if lo <= p <= hi)
        for p in np.linspace(0.05, 0.95, 91)
    ]
    assert 0.94 <= np.mean(coverage) <= 0.96 and min(coverage) > 0.85


@pytest.mark.slow
def test_spearman_interval_covers_at_its_level() -> None:
    rng = np.random.default_rng(1)
    n, rho_gauss = 40, 0.5
    cov = [[1, rho_gauss], [rho_gauss, 1]]
    truth = 6 / np.pi * np.arcsin(rho_gauss / 2)  # Spearman's rho of a bivariate normal
    hits = []
    for _ in range(600):
        x = rng.multivariate_normal([0, 0], cov, n)
        lo, hi = spearman_interval(float(spearmanr(x[:, 0], x[:, 1]).statistic), n)
        hits.append(lo <= truth <= hi)
    assert 0.92 <= np.mean(hits) <= 0.98


@given(st.floats(-0.99, 0.99), st.integers(4, 1000))
def test_spearman_interval_holds_the_estimate_and_narrows_with_n(rho: float, n: int) -> None:
    lo, hi = spearman_interval(rho, n)
    assert -1 <= lo <= rho <= hi <= 1
    lo4, hi4 = spearman_interval(rho, 4 * n)
    assert hi4 - lo4 < hi - lo


def test_the_straddling_cases_are_inconclusive_and_clear_ones_decided() -> None:
    # 2.3 pp change at n = 300 against a 2 pp bound: the interval spans about ±7 pp.
    change = difference_interval(83, 300, 76, 300)
    assert within(change, 0.02) == "inconclusive"
    assert within(difference_interval(124, 300, 57, 300), 0.02) == "fails"  # 22.3 pp
    assert within(difference_interval(5000, 10000, 5010, 10000), 0.02) == "holds"
    # Spearman 0.494 from 40 batches against 0.5.
    assert at_least(spearman_interval(0.494, 40), 0.5) == "inconclusive"
    assert at_least(spearman_interval(0.9, 40), 0.5) == "holds"
    assert at_least(spearman_interval(-0.158, 43), 0.5) == "fails"
    assert combine(["holds", "inconclusive"]) == "inconclusive"
    assert combine(["holds", "fails", "inconclusive"]) == "fails"
    assert combine(["holds", "holds"]) == "holds"


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(5, 4)
    with pytest.raises(ValueError, match="4 pairs"):
        spearman_interval(0.1, 3)
    with pytest.raises(ValueError, match="level"):
        wilson_interval(1, 2, level=1.0)
