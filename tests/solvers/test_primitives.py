"""``project`` and ``solve_basis`` on any encoder callable (OMEGA §4)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from strategies import gaussian, gen, random_orthogonal, random_signs, seeds

from geolip.solvers.primitives import encode_points, project, solve_basis
from geolip.solvers.projective_kmeans import projective_kmeans


@pytest.mark.slow
def test_project_encodes_in_batches_and_clusters_every_row() -> None:
    weights = gaussian(6, 3 * 4, gen(0))

    def encode(x: torch.Tensor) -> torch.Tensor:  # (B, 6) → (B, 3, 4) rows
        return (x @ weights).reshape(x.shape[0], 3, 4)

    points = gaussian(50, 6, gen(1))
    rows = encode_points(points, encode, batch_size=7)
    assert rows.shape == (150, 4) and torch.allclose(rows, encode(points).reshape(-1, 4))
    fit = project(points, encode, 5, batch_size=7, seed=2)
    assert fit.centroids.shape == (5, 4) and fit.assignment.shape == (150,)
    assert torch.equal(fit.centroids, projective_kmeans(rows, 5, seed=2).centroids)
    with pytest.raises(ValueError, match="no points"):
        project(points[:0], encode, 2)


def test_solve_basis_finds_the_axes_that_span_the_targets() -> None:
    g = gen(3)
    axes = torch.nn.functional.normalize(gaussian(12, 5, g), dim=1)
    coeffs = gaussian(200, 2, g)
    targets = coeffs @ axes[[4, 9]]  # every target lies in the span of axes 4 and 9
    sol = solve_basis(targets, axes, 2)
    assert sorted(sol.indices.tolist()) == [4, 9]
    assert sol.captured[-1] == pytest.approx(1.0, abs=1e-12)
    assert bool((sol.captured.diff() >= 0).all())


def test_solve_basis_through_an_encoder_and_its_refusals() -> None:
    axes = torch.eye(4, dtype=torch.float64)
    sol = solve_basis(torch.ones(3, 2), axes, 4, encode=lambda x: torch.cat([x, 0 * x], dim=1))
    assert sorted(sol.indices.tolist()[:2]) == [0, 1] and sol.captured[1] == pytest.approx(1.0)
    assert len(solve_basis(torch.ones(2, 4), torch.ones(3, 4), 3).indices) == 1  # one direction
    with pytest.raises(ValueError, match="k must be in"):
        solve_basis(torch.ones(2, 4), axes, 5)
    with pytest.raises(ValueError, match="axes must be"):
        solve_basis(torch.ones(2, 4), torch.ones(3, 5), 2)
    with pytest.raises(ValueError, match="no non-zero"):
        solve_basis(torch.zeros(2, 4), axes, 2)


@given(seed=seeds, d=st.integers(2, 6), det=st.sampled_from([1.0, -1.0]), k=st.integers(1, 6))
def test_solve_basis_ignores_signs_and_follows_rotations(
    seed: int, d: int, det: float, k: int
) -> None:
    g = gen(seed)
    axes, targets = gaussian(9, d, g), gaussian(30, d, g) * torch.linspace(0.2, 3, d)
    k = min(k, d)
    sol = solve_basis(targets, axes, k)
    flipped = solve_basis(
        targets * random_signs(30, g).unsqueeze(1), axes * random_signs(9, g).unsqueeze(1), k
    )
    r = random_orthogonal(d, g, det)
    rotated = solve_basis(targets @ r.T, axes @ r.T, k)
    assert torch.allclose(flipped.captured, sol.captured, atol=1e-9)
    assert torch.allclose(rotated.captured, sol.captured, atol=1e-9)
    # once one dimension is left, every remaining axis adds the same: ties, decided by rounding
    settled = min(k, d - 1)
    same = sol.indices[:settled].tolist()
    assert same == flipped.indices[:settled].tolist() == rotated.indices[:settled].tolist()
