"""Tests of geolip.solvers.metrics against closed forms, spec §C.1 numbers and invariants."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.stats import special_ortho_group

from geolip.solvers.metrics import (
    cayley_menger_volume_sq,
    cv_uniform,
    effective_rank,
    pentachoron_cv,
)


def gram_volume_sq(points: np.ndarray) -> float:
    """Independent formula: vol² = det(E Eᵀ) / (k!)² with E the edges from the first point."""
    edges = points[1:] - points[0]
    k = edges.shape[0]
    return float(np.linalg.det(edges @ edges.T)) / math.factorial(k) ** 2


def unit_rows(n: int, dim: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    rows = torch.randn(n, dim, generator=gen, dtype=torch.float64)
    return torch.nn.functional.normalize(rows, dim=-1)


# --- Cayley–Menger -------------------------------------------------------------------------------


def test_segment_volume_is_squared_length() -> None:
    p = torch.tensor([[1.0, 2.0, 3.0], [4.0, 6.0, 3.0]])
    assert cayley_menger_volume_sq(p).item() == pytest.approx(25.0, rel=1e-14)


def test_unit_right_triangle_area() -> None:
    tri = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    assert cayley_menger_volume_sq(tri).item() == pytest.approx(0.25, rel=1e-14)
    tri3d = torch.tensor([[0.0, 0.0, 5.0], [1.0, 0.0, 5.0], [0.0, 1.0, 5.0]])
    assert cayley_menger_volume_sq(tri3d).item() == pytest.approx(0.25, rel=1e-14)


def test_regular_tetrahedron() -> None:
    # Alternate cube vertices: edge 2√2, volume a³/(6√2) = 8/3.
    tet = torch.tensor([[1.0, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]])
    assert cayley_menger_volume_sq(tet).item() == pytest.approx((8 / 3) ** 2, rel=1e-13)


def test_regular_pentachoron() -> None:
    # Standard basis of R^5 is a regular 4-simplex of edge √2: vol = a⁴/4!·√(5/2⁴).
    vol = math.sqrt(2) ** 4 / 24 * math.sqrt(5 / 16)
    assert cayley_menger_volume_sq(torch.eye(5)).item() == pytest.approx(vol**2, rel=1e-13)


def test_random_4_simplices_match_gram_formula_batched() -> None:
    gen = torch.Generator().manual_seed(3)
    pts = torch.randn(7, 3, 5, 6, generator=gen, dtype=torch.float64)
    vol_sq = cayley_menger_volume_sq(pts)
    assert vol_sq.shape == (7, 3)
    assert vol_sq.dtype == torch.float64
    expected = np.vectorize(lambda i, j: gram_volume_sq(pts[i, j].numpy()))(*np.indices((7, 3)))
    np.testing.assert_allclose(vol_sq.numpy(), expected, rtol=1e-10)


def test_float32_input_is_computed_in_float64() -> None:
    tri = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=torch.float32)
    assert cayley_menger_volume_sq(tri).dtype == torch.float64


def test_five_points_in_r3_have_no_4_volume() -> None:
    pts = torch.randn(5, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    max_d2 = torch.cdist(pts, pts).square().max().item()
    assert abs(cayley_menger_volume_sq(pts).item()) < 1e-12 * max_d2**4


@pytest.mark.parametrize("shape", [(3,), (1, 4), (0, 3)])
def test_volume_rejects_fewer_than_two_points(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError):
        cayley_menger_volume_sq(torch.zeros(shape))


@st.composite
def simplices(draw: st.DrawFn) -> tuple[np.ndarray, int]:
    k = draw(st.integers(1, 4))
    n = draw(st.integers(k, 6))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    return rng.uniform(-3, 3, size=(k + 1, n)), seed


def cm_tolerance(points: np.ndarray) -> float:
    k = points.shape[0] - 1
    d2 = ((points[:, None] - points[None]) ** 2).sum(-1).max()
    return 1e-11 * d2**k


@settings(max_examples=60, deadline=None)
@given(simplices(), st.floats(-50, 50))
def test_volume_invariant_under_rigid_motion_and_permutation(
    sample: tuple[np.ndarray, int], shift: float
) -> None:
    points, seed = sample
    rng = np.random.default_rng(seed + 1)
    n = points.shape[1]
    rotation = special_ortho_group.rvs(n, random_state=rng) if n > 1 else np.eye(1)
    moved = points[rng.permutation(points.shape[0])] @ rotation.T + shift * rng.normal(size=n)
    v0 = cayley_menger_volume_sq(torch.from_numpy(points)).item()
    v1 = cayley_menger_volume_sq(torch.from_numpy(moved)).item()
    assert abs(v1 - v0) <= cm_tolerance(points)
    assert abs(v0 - gram_volume_sq(points)) <= cm_tolerance(points)


@settings(max_examples=60, deadline=None)
@given(simplices(), st.floats(1e-3, 1e3))
def test_volume_scales_as_s_to_the_2k(sample: tuple[np.ndarray, int], s: float) -> None:
    points, _ = sample
    k = points.shape[0] - 1
    v = cayley_menger_volume_sq(torch.from_numpy(points)).item()
    vs = cayley_menger_volume_sq(torch.from_numpy(s * points)).item()
    assert abs(vs - s ** (2 * k) * v) <= s ** (2 * k) * cm_tolerance(points)


# --- pentachoron CV ------------------------------------------------------------------------------


def test_cv_of_a_single_regular_simplex_is_zero() -> None:
    # V = 5 orthonormal rows: every draw is the same regular simplex, so all volumes agree.
    rows = torch.from_numpy(special_ortho_group.rvs(5, random_state=0))
    cv = pentachoron_cv(rows, generator=torch.Generator().manual_seed(0))
    assert abs(cv) < 1e-12


def test_cv_converges_to_population_cv_over_all_subsets() -> None:
    rows = unit_rows(9, 6, seed=4)
    vols = np.sqrt(
        [gram_volume_sq(rows[list(s)].numpy()) for s in itertools.combinations(range(9), 5)]
    )
    population = vols.std() / vols.mean()
    sampled = pentachoron_cv(rows, n_samples=40_000, generator=torch.Generator().manual_seed(1))
    assert sampled == pytest.approx(population, rel=0.02)


def test_cv_is_deterministic_under_generator_seed() -> None:
    rows = unit_rows(64, 8, seed=0)
    a = pentachoron_cv(rows, generator=torch.Generator().manual_seed(5))
    b = pentachoron_cv(rows, generator=torch.Generator().manual_seed(5))
    c = pentachoron_cv(rows, generator=torch.Generator().manual_seed(6))
    assert a == b
    assert a != c


def test_cv_pool_is_the_first_512_rows() -> None:
    rows = unit_rows(600, 8, seed=2)
    tail_changed = torch.cat([rows[:512], 100.0 * unit_rows(88, 8, seed=3)])
    a = pentachoron_cv(rows, generator=torch.Generator().manual_seed(0))
    b = pentachoron_cv(tail_changed, generator=torch.Generator().manual_seed(0))
    assert a == b


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.floats(1e-8, 1e8), st.integers(4, 12))
def test_cv_is_scale_invariant(seed: int, scale: float, dim: int) -> None:
    rows = unit_rows(40, dim, seed)
    a = pentachoron_cv(rows, generator=torch.Generator().manual_seed(seed))
    b = pentachoron_cv(scale * rows, generator=torch.Generator().manual_seed(seed))
    assert b == pytest.approx(a, rel=1e-9)


def test_tiny_scale_is_not_discarded_as_degenerate() -> None:
    # Upstream's absolute vol² > 1e-20 would reject every draw at this scale (vol² ~ 1e-56).
    rows = 1e-6 * unit_rows(64, 8, seed=0)
    tiny = pentachoron_cv(rows, generator=torch.Generator().manual_seed(0))
    unit = pentachoron_cv(1e6 * rows, generator=torch.Generator().manual_seed(0))
    assert tiny == pytest.approx(unit, rel=1e-9)


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_cv_is_nan_with_warning_below_dimension_4(dim: int) -> None:
    with pytest.warns(RuntimeWarning, match="4-volume"):
        assert math.isnan(pentachoron_cv(unit_rows(32, dim, seed=0)))


def test_cv_is_nan_with_warning_when_rows_span_only_3_dimensions() -> None:
    # Rows of a random 3-dimensional subspace of R^8: every 5-point simplex is flat.
    basis = torch.from_numpy(special_ortho_group.rvs(8, random_state=1)[:3])
    rows = unit_rows(50, 3, seed=1) @ basis
    with pytest.warns(RuntimeWarning, match="non-degenerate"):
        assert math.isnan(pentachoron_cv(rows, generator=torch.Generator().manual_seed(0)))


def test_cv_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        pentachoron_cv(unit_rows(4, 8, seed=0))
    with pytest.raises(ValueError):
        pentachoron_cv(torch.zeros(2, 10, 8))
    bad = unit_rows(10, 8, seed=0)
    bad[3, 2] = math.nan
    with pytest.raises(ValueError):
        pentachoron_cv(bad)


# --- cv_uniform ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dim", "expected", "tol"),
    [(4, 0.917, 0.05), (8, 0.364, 0.015), (16, 0.200, 0.01), (32, 0.129, 0.01)],
)
def test_cv_uniform_reproduces_spec_table(dim: int, expected: float, tol: float) -> None:
    assert cv_uniform(256, dim) == pytest.approx(expected, abs=tol)


def test_cv_uniform_is_roughly_independent_of_v() -> None:
    # Spec §C.1: the reference values hold for V from 32 to 1,024.
    assert cv_uniform(32, 16) == pytest.approx(0.200, abs=0.015)


def test_cv_uniform_is_deterministic_and_cached() -> None:
    a = cv_uniform(64, 8, n_trials=5, seed=3)
    assert cv_uniform(64, 8, n_trials=5, seed=3) == a
    assert cv_uniform(64, 8, n_trials=5, seed=4) != a


def test_cv_uniform_warns_below_dimension_4_on_every_call() -> None:
    for _ in range(2):
        with pytest.warns(RuntimeWarning):
            assert math.isnan(cv_uniform(64, 3))


# --- effective rank ------------------------------------------------------------------------------


@pytest.mark.parametrize("dim", [1, 2, 5, 16])
def test_effective_rank_of_flat_spectrum_is_d(dim: int) -> None:
    assert effective_rank(torch.full((dim,), 0.3, dtype=torch.float64)).item() == pytest.approx(
        dim, rel=1e-12
    )


def test_effective_rank_of_single_value_is_one() -> None:
    erank = effective_rank(torch.tensor([0.0, 2.0, 0.0, 0.0], dtype=torch.float64)).item()
    assert erank == pytest.approx(1.0, abs=1e-6)


def test_effective_rank_is_batched() -> None:
    s = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]], dtype=torch.float64)
    np.testing.assert_allclose(effective_rank(s).numpy(), [3.0, 1.0], atol=1e-6)


def test_effective_rank_rejects_negative_values() -> None:
    with pytest.raises(ValueError):
        effective_rank(torch.tensor([1.0, -0.5]))


positive_spectra = st.lists(st.floats(1e-3, 1e3), min_size=1, max_size=32)


@pytest.mark.slow
@settings(max_examples=100, deadline=None)
@given(positive_spectra, st.floats(1e-6, 1e6), st.randoms(use_true_random=False))
def test_effective_rank_invariants(values: list[float], scale: float, rnd) -> None:
    s = torch.tensor(values, dtype=torch.float64)
    erank = effective_rank(s).item()
    assert 1.0 - 1e-9 <= erank <= len(values) + 1e-9
    # Independent formula (no clamp is active: every p ≥ 1e-3 / (32·1e3) > 1e-8).
    assert erank == pytest.approx(math.exp(stats.entropy(values)), rel=1e-10)
    assert effective_rank(scale * s).item() == pytest.approx(erank, rel=1e-10)
    shuffled = list(values)
    rnd.shuffle(shuffled)
    assert effective_rank(torch.tensor(shuffled, dtype=torch.float64)).item() == pytest.approx(
        erank, rel=1e-12
    )
