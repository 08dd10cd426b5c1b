"""Projective geometry: canonical sign, angles, antipodal collapse, exact baseline, statute."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from strategies import dims, gen, random_orthogonal, random_rows, seeds

from geolip.solvers.projective import (
    antipodal_collapse,
    canonical_sign,
    deviation,
    mean_projective_angle,
    monte_carlo_rp_baseline,
    projective_angle,
    statute,
    uniform_rp_baseline,
)


@given(k=st.integers(1, 30), d=dims, seed=seeds)
def test_canonical_sign_is_sign_invariant_and_idempotent(k: int, d: int, seed: int) -> None:
    x = random_rows(k, d, seed)
    c = canonical_sign(x)
    assert torch.equal(canonical_sign(-x), c)
    assert torch.equal(canonical_sign(c), c)
    assert torch.equal(c.abs(), x.abs())


def test_canonical_sign_skips_tiny_leading_coordinates_and_negative_zero() -> None:
    x = torch.tensor([[5e-7, -1.0, 0.0], [-0.0, 0.0, -2.0], [0.0, 0.0, 0.0]])
    c = canonical_sign(x)
    assert torch.equal(c, torch.tensor([[-5e-7, 1.0, 0.0], [0.0, 0.0, 2.0], [0.0, 0.0, 0.0]]))
    assert not torch.signbit(c).flatten()[[1, 3, 4, 6, 7, 8]].any()


@given(d=dims, seed=seeds)
def test_projective_angle_is_sign_and_rotation_invariant(d: int, seed: int) -> None:
    a, b = random_rows(6, d, seed), random_rows(5, d, seed + 1)
    r = random_orthogonal(d, gen(seed + 2), -1.0)
    ang = projective_angle(a, b)
    assert torch.allclose(projective_angle(-a, b), ang)
    assert torch.allclose(projective_angle(a @ r.T, b @ r.T), ang, atol=1e-7)
    assert (ang >= 0).all() and (ang <= math.pi / 2 + 1e-12).all()


@pytest.mark.parametrize(
    ("dim", "value"),
    [
        (2, math.pi / 4),
        (3, 1.0),
        (4, 1.1037),
        (5, 1.1667),
        (6, 1.2098),
        (8, 1.2664),
        (16, 1.3638),
        (24, 1.4039),
    ],
)
def test_uniform_baseline_matches_spec_table(dim: int, value: float) -> None:
    assert uniform_rp_baseline(dim) == pytest.approx(value, abs=1e-4)


@pytest.mark.parametrize("dim", [3, 4, 7])
def test_uniform_baseline_agrees_with_monte_carlo(dim: int) -> None:
    # 4,096 points → ~8.4M pairs; the spec reports agreement to 1e-4 for the upstream MC
    assert monte_carlo_rp_baseline(dim) == pytest.approx(uniform_rp_baseline(dim), abs=1e-3)


def test_sampled_mean_angle_estimates_the_exact_one() -> None:
    axes = random_rows(600, 5, 0)
    exact, how = mean_projective_angle(axes)
    est, how_s = mean_projective_angle(axes, exact_limit=1000, n_rows=400)
    assert how == "exact" and how_s == "sampled:400"
    assert est == pytest.approx(exact, abs=5e-3)


def test_deviation_of_orthonormal_frame_is_positive() -> None:
    # D orthogonal axes all sit at π/2: maximally spread, far above the uniform baseline
    assert deviation(torch.eye(4)) == pytest.approx(math.pi / 2 - uniform_rp_baseline(4))


def test_antipodal_collapse_merges_pairs_in_acceptance_order() -> None:
    u = torch.tensor(
        [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [-1.0, 0.02, 0.0], [0.0, 0.0, 1.0], [0.0, -0.95, 0.05]]
    )
    c = antipodal_collapse(u)
    # row 0/2 are more antipodal (cos ≈ -0.9998) than 1/4 (cos ≈ -0.9986): accepted first
    assert c.pairs.tolist() == [[0, 2], [1, 4]]
    assert c.unpaired.tolist() == [3]
    assert c.n_axes == 3
    unit = torch.nn.functional.normalize(u.double(), dim=1)
    expected0 = canonical_sign((unit[0] - unit[2]) / (unit[0] - unit[2]).norm())
    assert torch.allclose(c.axes[0].double(), expected0, atol=1e-7)
    assert torch.allclose(c.axes[2], torch.tensor([0.0, 0.0, 1.0]))


@given(v=st.integers(2, 40), d=st.integers(2, 8), seed=seeds)
def test_antipodal_collapse_invariants(v: int, d: int, seed: int) -> None:
    rows = random_rows(v, d, seed)
    c = antipodal_collapse(rows)
    used = c.pairs.flatten().tolist() + c.unpaired.tolist()
    assert sorted(used) == list(range(v))  # every row used exactly once
    assert c.n_axes == v - c.n_pairs
    assert torch.allclose(c.axes.norm(dim=1), torch.ones(c.n_axes, dtype=rows.dtype))
    unit = torch.nn.functional.normalize(rows, dim=1)
    for i, j in c.pairs.tolist():
        assert float(unit[i] @ unit[j]) < -0.9
    # flipping every row leaves the cosine matrix, hence the pairs and the axes, unchanged
    flipped = antipodal_collapse(-rows)
    assert flipped.pairs.tolist() == c.pairs.tolist()
    assert torch.allclose(flipped.axes, c.axes)


def test_antipodal_collapse_rejects_bad_rows() -> None:
    with pytest.raises(ValueError, match="zero"):
        antipodal_collapse(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="NaN"):
        antipodal_collapse(torch.tensor([[float("nan"), 1.0]]))


@pytest.mark.parametrize(
    ("dev", "pairs", "axes", "rows", "label", "pf", "pfr"),
    [
        (-0.08, 6, 26, 32, "degenerate", 6 / 26, 12 / 32),
        (0.01, 6, 26, 32, "uniform", 6 / 26, 12 / 32),
        (0.09, 13, 19, 32, "polytope", 13 / 19, 26 / 32),
        (0.09, 5, 27, 32, "unclassified", 5 / 27, 10 / 32),
        (0.09, None, 27, None, "unclassified", None, None),
    ],
)
def test_statute_classes_and_both_pair_fractions(dev, pairs, axes, rows, label, pf, pfr) -> None:
    r = statute(dev, n_pairs=pairs, n_axes=axes, n_rows=rows)
    assert r.statute == label
    assert r.clean == (abs(dev) < 0.05)
    assert r.pair_fraction == pf and r.pair_fraction_rows == pfr
