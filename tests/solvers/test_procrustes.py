"""Tests of geolip.solvers.procrustes: corresponded, legacy, whitened and generalised."""

from __future__ import annotations

import math

import pytest
import scipy.linalg
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import F64, gaussian, gen, random_orthogonal, random_signs, unit_axes

from geolip.solvers.alignment import align_projective
from geolip.solvers.procrustes import (
    GPAResult,
    generalized_procrustes,
    legacy_procrustes_distance,
    orthogonal_procrustes,
    whitened_procrustes,
)

# --------------------------------------------------------------------------------------------
# orthogonal_procrustes


@settings(max_examples=50, deadline=None)
@given(
    d=st.integers(1, 12),
    extra=st.integers(2, 30),
    det=st.sampled_from([1.0, -1.0]),
    seed=st.integers(0, 2**31 - 1),
)
def test_procrustes_recovers_rotation(d: int, extra: int, det: float, seed: int) -> None:
    g = gen(seed)
    rotation = random_orthogonal(d, g, det)
    source = gaussian(d + extra, d, g)
    estimate = orthogonal_procrustes(source, source @ rotation.T, proper=det > 0)
    assert estimate.dtype == F64
    assert (estimate - rotation).norm() < 1e-10
    assert (estimate.T @ estimate - torch.eye(d, dtype=F64)).norm() < 1e-12


@pytest.mark.parametrize("d", [2, 3, 6])
def test_proper_gives_kabsch_optimum_when_best_fit_is_a_reflection(d: int) -> None:
    g = gen(d)
    source = gaussian(20, d, g)
    reflection = random_orthogonal(d, g, det=-1.0)
    target = source @ reflection.T + 0.01 * gaussian(20, d, g)
    free = orthogonal_procrustes(source, target)
    proper = orthogonal_procrustes(source, target, proper=True)
    assert torch.linalg.det(free) < 0
    assert (free - reflection).norm() < 0.05
    assert torch.linalg.det(proper) == pytest.approx(1.0, abs=1e-12)
    assert (proper.T @ proper - torch.eye(d, dtype=F64)).norm() < 1e-12
    # Kabsch: the best proper rotation attains tr(R H) = σ_1 + … + σ_{D-1} − σ_D.
    h = source.T @ target
    sigma = torch.linalg.svdvals(h)
    assert torch.trace(proper @ h).item() == pytest.approx(
        (sigma[:-1].sum() - sigma[-1]).item(), rel=1e-12
    )


@settings(max_examples=30, deadline=None)
@given(d=st.integers(2, 12), data=st.data())
def test_rank_deficient_identical_inputs_give_identity(d: int, data: st.DataObject) -> None:
    n = data.draw(st.integers(1, d - 1), label="n")
    seed = data.draw(st.integers(0, 2**31 - 1), label="seed")
    x = gaussian(n, d, gen(seed))
    for proper in (False, True):
        assert (
            orthogonal_procrustes(x, x, proper=proper) - torch.eye(d, dtype=F64)
        ).abs().max() < 1e-12


def test_rank_deficient_rotation_maps_rows_and_stays_orthogonal() -> None:
    g = gen(1)
    rotation = random_orthogonal(8, g, det=1.0)
    source = gaussian(3, 8, g)
    estimate = orthogonal_procrustes(source, source @ rotation.T, proper=True)
    assert (source @ estimate.T - source @ rotation.T).norm() < 1e-12
    assert (estimate.T @ estimate - torch.eye(8, dtype=F64)).norm() < 1e-12
    assert torch.linalg.det(estimate) == pytest.approx(1.0, abs=1e-12)


def test_zero_input_gives_identity() -> None:
    zeros = torch.zeros(4, 5, dtype=F64)
    assert torch.equal(orthogonal_procrustes(zeros, zeros), torch.eye(5, dtype=F64))


@pytest.mark.parametrize("seed", range(5))
def test_procrustes_agrees_with_scipy(seed: int) -> None:
    g = gen(seed)
    source, target = gaussian(30, 7, g), gaussian(30, 7, g)
    q, _ = scipy.linalg.orthogonal_procrustes(source.numpy(), target.numpy())
    # scipy minimises ‖A Q − B‖, i.e. rows a ↦ a Q = (Qᵀ a)ᵀ, so R = Qᵀ.
    assert (orthogonal_procrustes(source, target) - torch.from_numpy(q).T).norm() < 1e-10


def test_weights_equal_scaling_rows_by_their_square_root() -> None:
    g = gen(3)
    source, target = gaussian(25, 5, g), gaussian(25, 5, g)
    w = torch.rand(25, generator=g, dtype=F64) * 3
    scaled = orthogonal_procrustes(w.sqrt()[:, None] * source, w.sqrt()[:, None] * target)
    assert (orthogonal_procrustes(source, target, weights=w) - scaled).norm() < 1e-10


@pytest.mark.parametrize(
    ("source", "target", "weights"),
    [
        (torch.zeros(3, 4), torch.zeros(3, 5), None),
        (torch.zeros(3, 4), torch.zeros(2, 4), None),
        (torch.zeros(4), torch.zeros(4), None),
        (torch.full((3, 4), math.nan), torch.zeros(3, 4), None),
        (torch.zeros(3, 4), torch.zeros(3, 4), -torch.ones(3)),
        (torch.zeros(3, 4), torch.zeros(3, 4), torch.ones(2)),
    ],
)
def test_procrustes_rejects_bad_input(
    source: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None
) -> None:
    with pytest.raises(ValueError):
        orthogonal_procrustes(source, target, weights)


# --------------------------------------------------------------------------------------------
# legacy_procrustes_distance


def test_legacy_distance_is_zero_for_identical_and_rotated_inputs() -> None:
    g = gen(0)
    a = unit_axes(32, 8, g)
    assert legacy_procrustes_distance(a, a) < 1e-12
    assert legacy_procrustes_distance(a, a @ random_orthogonal(8, g, det=1.0).T) < 1e-12
    # Rows are compared by index over the first min(rows) rows.
    assert legacy_procrustes_distance(a, torch.cat([a, unit_axes(5, 8, g)])) < 1e-12


def test_legacy_distance_is_not_sign_invariant() -> None:
    """The reason geolip replaces it: flipping axis signs (the same codebook) costs distance."""
    g = gen(1)
    a = unit_axes(32, 8, g)
    flipped = a * random_signs(32, g).unsqueeze(1)
    assert legacy_procrustes_distance(a, flipped) > 0.1
    assert align_projective(a, flipped, null_trials=0).mean_residual_deg < 1e-6


# --------------------------------------------------------------------------------------------
# whitened_procrustes


def inverse_sqrt_cov(x: torch.Tensor) -> torch.Tensor:
    """Independent reference Σ^(-1/2) via scipy.linalg.sqrtm."""
    cov = torch.cov(x.T).numpy()
    return torch.from_numpy(scipy.linalg.inv(scipy.linalg.sqrtm(cov).real))


def test_whitened_procrustes_reproduces_whiten_rotate_recolour_construction() -> None:
    g = gen(0)
    n, d = 200, 5
    source = gaussian(n, d, g) @ gaussian(d, d, g) + 3.0
    rotation = random_orthogonal(d, g, det=1.0)
    mix = gaussian(d, d, g)
    colorer = torch.from_numpy(scipy.linalg.sqrtm((mix @ mix.T + torch.eye(d)).numpy()).real)
    shift = gaussian(1, d, g)
    whitened = (source - source.mean(0)) @ inverse_sqrt_cov(source)
    target = whitened @ rotation.T @ colorer + shift
    fit = whitened_procrustes(source, target)
    assert (fit.apply(source) - target).abs().max() < 1e-9
    assert (fit.rotation - rotation).abs().max() < 1e-9
    assert (fit.target_colorer - colorer).abs().max() < 1e-9
    assert (fit.source_mean - source.mean(0)).abs().max() < 1e-12
    assert (fit.target_mean - shift[0]).abs().max() < 1e-9


def test_whitened_map_reproduces_target_mean_and_covariance() -> None:
    g = gen(1)
    source = gaussian(300, 6, g) @ gaussian(6, 6, g) - 1.0
    target = gaussian(300, 6, g) @ gaussian(6, 6, g) + 2.0
    fit = whitened_procrustes(source, target, proper=True)
    mapped = fit.apply(source)
    assert mapped.dtype == F64
    assert (mapped.mean(0) - target.mean(0)).abs().max() < 1e-9
    assert (torch.cov(mapped.T) - torch.cov(target.T)).abs().max() < 1e-9
    assert torch.linalg.det(fit.rotation) == pytest.approx(1.0, abs=1e-12)
    whitener_error = fit.source_whitener - inverse_sqrt_cov(source)
    assert whitener_error.abs().max() < 1e-9


def test_whitened_procrustes_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        whitened_procrustes(torch.ones(1, 3), torch.ones(1, 3))
    with pytest.raises(ValueError):
        whitened_procrustes(torch.randn(5, 3), torch.randn(6, 3))
    fit = whitened_procrustes(torch.randn(10, 3), torch.randn(10, 3))
    with pytest.raises(ValueError):
        fit.apply(torch.randn(4, 2))


# --------------------------------------------------------------------------------------------
# generalized_procrustes


def aligned_sets(sets: list[torch.Tensor], result: GPAResult) -> torch.Tensor:
    x = torch.stack(sets) - result.translations[:, None]
    return result.scales[:, None, None] * x @ result.rotations.transpose(1, 2)


def residual_after_best_rotation(x: torch.Tensor, y: torch.Tensor) -> float:
    return (x @ orthogonal_procrustes(x, y).T - y).norm().item()


def test_gpa_of_rotated_translated_copies_recovers_base() -> None:
    g = gen(0)
    base = gaussian(20, 4, g)
    sets = [base @ random_orthogonal(4, g, det=1.0).T + gaussian(1, 4, g) for _ in range(4)]
    result = generalized_procrustes(sets)
    assert result.converged and result.history[-1] < 1e-10
    assert result.rotations.shape == (4, 4, 4) and result.translations.shape == (4, 4)
    assert torch.equal(result.scales, torch.ones(4, dtype=F64))
    assert (aligned_sets(sets, result) - result.consensus).abs().max() < 1e-10
    assert residual_after_best_rotation(result.consensus, base - base.mean(0)) < 1e-10


def test_gpa_with_scaling_normalises_the_consensus() -> None:
    g = gen(1)
    base = gaussian(15, 3, g)
    sets = [c * base @ random_orthogonal(3, g, det=1.0).T for c in (0.5, 1.0, 4.0)]
    result = generalized_procrustes(sets, scale=True, proper=True)
    assert result.converged
    assert torch.linalg.matrix_norm(result.consensus).item() == pytest.approx(1.0)
    assert (aligned_sets(sets, result) - result.consensus).abs().max() < 1e-10
    assert torch.allclose(torch.linalg.det(result.rotations), torch.ones(3, dtype=F64))


@pytest.mark.parametrize("rotated", [0, 2])
def test_gpa_is_invariant_to_rotating_one_input_set(rotated: int) -> None:
    g = gen(2)
    base = gaussian(25, 5, g)
    sets = [base @ random_orthogonal(5, g, 1.0).T + 0.1 * gaussian(25, 5, g) for _ in range(4)]
    result = generalized_procrustes(sets)
    moved = list(sets)
    moved[rotated] = sets[rotated] @ random_orthogonal(5, g, det=1.0).T
    again = generalized_procrustes(moved)
    assert result.converged and again.converged
    residuals = (aligned_sets(sets, result) - result.consensus).norm(dim=(1, 2))
    residuals_again = (aligned_sets(moved, again) - again.consensus).norm(dim=(1, 2))
    assert residuals.min() > 0.1  # a non-trivial problem
    assert (residuals - residuals_again).abs().max() < 1e-8
    assert residual_after_best_rotation(result.consensus, again.consensus) < 1e-8


def test_gpa_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        generalized_procrustes([torch.ones(3, 2)])
    with pytest.raises(ValueError):
        generalized_procrustes([torch.ones(3, 2), torch.ones(4, 2)])
    with pytest.raises(ValueError):
        generalized_procrustes([torch.zeros(3, 2), torch.zeros(3, 2)], scale=True)
