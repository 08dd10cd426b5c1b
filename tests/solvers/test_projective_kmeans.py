"""Projective k-means: a row and its negative are one point; rotations carry the centroids;
its own centroids are a fixed point; planted axes come back; its null is what i.i.d. rows give."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from strategies import (
    gaussian,
    gen,
    random_orthogonal,
    random_signs,
    seeds,
    separated_axes,
    tangent_noise,
)

from geolip.solvers.projective import canonical_sign
from geolip.solvers.projective_kmeans import (
    assign_rows,
    kmeans_null,
    projective_kmeans,
    usage_perplexity,
)


def planted(k: int, d: int, per_axis: int, sigma: float, seed: int) -> tuple[torch.Tensor, ...]:
    """(axes (k, d) separated by ≥ 30°, rows (k·per_axis, d) near ±axis with angle noise σ)."""
    g = gen(seed)
    axes = separated_axes(k, d, g, min_deg=30.0)
    base = axes.repeat_interleave(per_axis, dim=0)
    rows = tangent_noise(base, sigma, g) * random_signs(base.shape[0], g).unsqueeze(1)
    return axes, rows


def _angles_deg(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """For each row of a, the projective angle to its nearest row of b, degrees."""
    cos = (a @ b.T).abs().clamp(max=1.0).max(dim=1).values
    return torch.rad2deg(torch.arccos(cos))


@given(
    seed=seeds,
    d=st.integers(2, 6),
    n=st.integers(8, 60),
    k=st.integers(1, 6),
    flip_seed=seeds,
)
@pytest.mark.slow
def test_flipping_any_rows_gives_the_same_clustering_bit_for_bit(
    seed: int, d: int, n: int, k: int, flip_seed: int
) -> None:
    rows = gaussian(n, d, gen(seed))
    flipped = rows * random_signs(n, gen(flip_seed)).unsqueeze(1)
    a = projective_kmeans(rows, k, restarts=2, seed=seed % 1000)
    b = projective_kmeans(flipped, k, restarts=2, seed=seed % 1000)
    assert torch.equal(a.centroids, b.centroids)
    assert torch.equal(a.assignment, b.assignment) and a.objective == b.objective


@pytest.mark.slow
@given(seed=seeds, d=st.integers(3, 6), k=st.integers(1, 5), det=st.sampled_from([1.0, -1.0]))
def test_rotating_the_rows_rotates_the_centroids(seed: int, d: int, k: int, det: float) -> None:
    _, rows = planted(k, d, per_axis=12, sigma=0.1, seed=seed)
    rotation = random_orthogonal(d, gen(seed + 1), det)
    a = projective_kmeans(rows, k, restarts=2, seed=3)
    b = projective_kmeans(rows @ rotation.T, k, restarts=2, seed=3)
    assert torch.equal(a.assignment, b.assignment)
    expected = canonical_sign(a.centroids @ rotation.T)
    assert torch.allclose(b.centroids, expected, atol=1e-9)
    assert b.objective == pytest.approx(a.objective, abs=1e-12)


@pytest.mark.slow
@given(seed=seeds, d=st.integers(2, 6), k=st.integers(1, 6))
def test_its_own_centroids_are_a_fixed_point(seed: int, d: int, k: int) -> None:
    rows = gaussian(40, d, gen(seed))
    fit = projective_kmeans(rows, k, restarts=2, seed=1)
    again = projective_kmeans(fit.centroids, fit.k, restarts=1, seed=seed % 97)
    assert _angles_deg(fit.centroids, again.centroids).max() < 1e-5
    assert again.objective == pytest.approx(0.0, abs=1e-12)
    # and one more Lloyd step on the data changes nothing: each centroid is the top
    # eigenvector of its cluster's scatter
    unit = torch.nn.functional.normalize(rows, dim=1)
    for j in range(fit.k):
        members = unit[fit.assignment == j]
        if len(members):
            top = torch.linalg.eigh(members.T @ members).eigenvectors[:, -1]
            assert abs(float(top @ fit.centroids[j])) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.slow
@given(seed=seeds, d=st.integers(3, 8), k=st.integers(2, 6))
def test_planted_axes_are_recovered(seed: int, d: int, k: int) -> None:
    axes, rows = planted(k, d, per_axis=30, sigma=0.05, seed=seed)
    fit = projective_kmeans(rows, k, restarts=4, seed=0)
    assert _angles_deg(axes, fit.centroids).max() < 2.0
    assert fit.usage.tolist() == [30] * k
    assert fit.perplexity == pytest.approx(k)


def test_result_is_sorted_by_usage_canonical_and_deterministic() -> None:
    _, rows = planted(3, 4, per_axis=20, sigma=0.05, seed=5)
    rows = torch.cat([rows, rows[:20]])  # the first axis is used twice as often
    a = projective_kmeans(rows, 3, seed=7)
    b = projective_kmeans(rows.float(), 3, seed=7)
    assert a.usage.tolist() == [40, 20, 20] and int(a.usage.sum()) == rows.shape[0]
    assert torch.equal(a.centroids, canonical_sign(a.centroids))
    assert torch.allclose(a.centroids.norm(dim=1), torch.ones(3, dtype=torch.float64))
    assert torch.equal(a.centroids, projective_kmeans(rows, 3, seed=7).centroids)
    assert torch.allclose(a.centroids, b.centroids, atol=1e-6)
    assert a.mean_abs_cos.min() > 0.99 and 1 <= a.perplexity <= 3
    idx, cos2 = assign_rows(torch.nn.functional.normalize(rows, dim=1), a.centroids)
    assert torch.equal(idx, a.assignment)
    assert a.objective == pytest.approx(1 - float(cos2.mean()))


def test_max_rows_fits_on_a_sample_and_assigns_every_row() -> None:
    _, rows = planted(4, 5, per_axis=500, sigma=0.05, seed=2)
    fit = projective_kmeans(rows, 4, seed=0, max_rows=200)
    assert fit.fitted_rows == 200 and fit.assignment.shape == (2000,)
    assert sorted(fit.usage.tolist()) == [500] * 4


def test_usage_perplexity() -> None:
    assert usage_perplexity(torch.tensor([5, 5, 5, 5])) == pytest.approx(4.0)
    assert usage_perplexity(torch.tensor([7, 0, 0])) == pytest.approx(1.0)
    assert usage_perplexity(torch.tensor([1, 3])) == pytest.approx(
        math.exp(-(0.25 * math.log(0.25) + 0.75 * math.log(0.75)))
    )


def test_refusals() -> None:
    rows = gaussian(5, 3, gen(0))
    with pytest.raises(ValueError, match="k must be in"):
        projective_kmeans(rows, 6)
    with pytest.raises(ValueError, match="zero vector"):
        projective_kmeans(torch.cat([rows, torch.zeros(1, 3, dtype=rows.dtype)]), 2)
    with pytest.raises(ValueError, match="NaN"):
        projective_kmeans(torch.full((4, 3), float("nan")), 2)
    with pytest.raises(ValueError, match="D ≥ 2"):
        projective_kmeans(torch.ones(4, 1), 1)


def test_the_null_is_balanced_and_planted_data_is_far_below_it() -> None:
    null = kmeans_null(300, 4, 6, trials=4, seed=0, restarts=1)
    assert null.trials == 4 and null.perplexity.min() > 5.0  # i.i.d. rows: near-equal usage
    assert kmeans_null(300, 4, 6, trials=4, seed=0, restarts=1).objective.tolist() == (
        null.objective.tolist()
    )
    _, rows = planted(6, 4, per_axis=50, sigma=0.05, seed=1)
    fit = projective_kmeans(rows, 6, seed=0)
    placed = null.place("objective", fit.objective)
    assert placed["percentile"] == 0.0 and placed["z"] < -10
    assert null.place("perplexity", null.perplexity[0])["trials"] == 4
    with pytest.raises(ValueError, match="statistic"):
        null.place("deviation", 0.0)
