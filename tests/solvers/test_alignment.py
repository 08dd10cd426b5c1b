"""Tests of geolip.solvers.alignment: projective alignment with unknown correspondence."""

from __future__ import annotations

import math
from itertools import permutations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import (
    F64,
    gen,
    random_orthogonal,
    random_signs,
    separated_axes,
    shuffled_copy,
    sign_of_match,
    tangent_noise,
    unit_axes,
)

from geolip.solvers import alignment
from geolip.solvers.alignment import align_projective

# --------------------------------------------------------------------------------------------
# align_projective


@settings(max_examples=40, deadline=None)
@given(
    d=st.integers(3, 16),
    data=st.data(),
    det=st.sampled_from([1.0, -1.0]),
    seed=st.integers(0, 2**31 - 1),
)
@pytest.mark.slow
def test_align_recovers_rotation_permutation_and_signs(
    d: int, data: st.DataObject, det: float, seed: int
) -> None:
    k = data.draw(st.integers(d + 2, 64), label="k")
    proper = det > 0 and data.draw(st.booleans(), label="proper")
    g = gen(seed)
    a = unit_axes(k, d, g)
    rotation = random_orthogonal(d, g, det)
    b, partner, signs = shuffled_copy(a, rotation, g)
    result = align_projective(a, b, proper=proper, null_trials=0)
    global_sign, error = sign_of_match(result.rotation, rotation)
    assert error < 1e-6
    assert torch.equal(result.matching[:, 0], torch.arange(k))
    assert torch.equal(result.matching[:, 1], partner)
    assert torch.equal(result.signs, (global_sign * signs).long())
    assert bool(result.inliers.all())
    assert result.mean_residual_deg < 1e-6
    if proper:
        assert torch.linalg.det(result.rotation) == pytest.approx(1.0, abs=1e-9)


def test_align_identical_codebooks_gives_identity() -> None:
    a = unit_axes(40, 6, gen(2))
    result = align_projective(a, a, null_trials=0)
    assert (result.rotation - torch.eye(6, dtype=F64)).abs().max() < 1e-10
    assert torch.equal(result.matching, torch.arange(40).repeat(2, 1).T)
    assert torch.equal(result.signs, torch.ones(40, dtype=torch.long))


def test_align_result_fields_are_consistent() -> None:
    g = gen(4)
    a = separated_axes(40, 8, g, min_deg=15)
    b, _, _ = shuffled_copy(a, random_orthogonal(8, g, det=1.0), g)
    b = tangent_noise(b, 0.05, g)
    result = align_projective(a, b, null_trials=0)
    i, j = result.matching[:, 0], result.matching[:, 1]
    signed = ((a @ result.rotation.T)[i] * b[j]).sum(1)
    assert result.matching.dtype == torch.int64 and result.signs.dtype == torch.int64
    assert result.rotation.dtype == F64 and result.residual_deg.dtype == F64
    assert torch.equal(result.signs, torch.where(signed < 0, -1, 1))
    assert result.score == pytest.approx(signed.abs().mean().item(), abs=1e-12)
    residual = torch.rad2deg(torch.arccos(signed.abs().clamp(max=1)))
    assert (result.residual_deg - residual).abs().max() < 1e-6
    assert torch.equal(result.inliers, result.residual_deg <= 20.0)
    assert result.rms_chordal == pytest.approx((2 - 2 * signed.abs()).mean().sqrt().item())
    # Every target axis sits atan(0.05) from the truth; the refit can only do better.
    assert result.rms_chordal <= 2 * math.sin(math.atan(0.05) / 2) + 1e-12
    assert result.mean_residual_deg > 0.8 * math.degrees(math.atan(0.05))
    assert result.null_mean_deg is None and result.z_score is None
    assert result.start == "signature" and result.iterations >= 1


@pytest.mark.slow
def test_align_with_angular_noise_matches_at_least_99_percent() -> None:
    correct = total = 0
    for d in (4, 8, 12):
        for seed in range(4):
            g = gen(100 * d + seed)
            a = separated_axes(4 * d, d, g, min_deg=15)
            rotation = random_orthogonal(d, g, det=1.0)
            b, partner, _ = shuffled_copy(a, rotation, g)
            result = align_projective(tangent_noise(b, 0.05, g), a, null_trials=0)
            # Target and source swapped: result matches noisy row j to clean row partner⁻¹.
            inverse = torch.empty_like(partner)
            inverse[partner] = torch.arange(4 * d)
            correct += int((result.matching[:, 1] == inverse).sum())
            total += 4 * d
            assert sign_of_match(result.rotation, rotation.T)[1] < 0.3
    assert correct / total >= 0.99


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("extra", [2, 6])
@pytest.mark.parametrize("swap", [False, True])
def test_align_different_sizes_matches_shared_axes(seed: int, extra: int, swap: bool) -> None:
    """a: 40 axes; b: 32 of them rotated (a reflection) and sign-flipped, plus ``extra``
    unrelated axes, shuffled. K_B = 34 or 38 < K_A, and swapping the roles covers K_A < K_B
    too. Overlaps below ~80 % are not reliably recovered (documented)."""
    g = gen(seed)
    d, k, shared = 8, 40, 32
    a = unit_axes(k, d, g)
    rotation = random_orthogonal(d, g, det=-1.0)
    kept = torch.randperm(k, generator=g)[:shared]
    rotated = (a[kept] @ rotation.T) * random_signs(shared, g)[:, None]
    order = torch.randperm(shared + extra, generator=g)
    b = torch.cat([rotated, unit_axes(extra, d, g)])[order]
    position = torch.empty_like(order)
    position[order] = torch.arange(shared + extra)
    truth = {(int(kept[r]), int(position[r])) for r in range(shared)}
    if swap:
        result = align_projective(b, a, null_trials=0)
        inlier_pairs = {(int(i), int(j)) for j, i in result.matching[result.inliers]}
        rotation = rotation.T
    else:
        result = align_projective(a, b, null_trials=0)
        inlier_pairs = {(int(i), int(j)) for i, j in result.matching[result.inliers]}
    assert result.matching.shape == (min(k, shared + extra), 2)
    assert torch.equal(result.matching[:, 0], result.matching[:, 0].sort().values)
    assert len(set(result.matching[:, 1].tolist())) == result.matching.shape[0]
    assert inlier_pairs == truth
    assert sign_of_match(result.rotation, rotation)[1] < 1e-8


@pytest.mark.parametrize(("d", "fits"), [(3, True), (5, True), (4, False)])
def test_proper_alignment_of_a_reflected_copy(d: int, fits: bool) -> None:
    """Axes carry no sign, so in odd D the reflection Q and the rotation −Q align a reflected
    copy equally well; in even D a proper R cannot."""
    g = gen(d)
    a = unit_axes(6 * d, d, g)
    reflection = random_orthogonal(d, g, det=-1.0)
    b, partner, _ = shuffled_copy(a, reflection, g)
    result = align_projective(a, b, proper=True, null_trials=0)
    assert torch.linalg.det(result.rotation) == pytest.approx(1.0, abs=1e-9)
    if fits:
        assert (result.rotation + reflection).norm() < 1e-9
        assert torch.equal(result.matching[:, 1], partner)
    else:
        assert result.mean_residual_deg > 1.0


@settings(max_examples=60, deadline=None)
@given(
    k_a=st.integers(1, 5),
    k_b=st.integers(1, 5),
    floor=st.sampled_from([0.0, 0.5, 0.9]),
    seed=st.integers(0, 2**31 - 1),
)
def test_assignment_is_optimal_against_brute_force(
    k_a: int, k_b: int, floor: float, seed: int
) -> None:
    c = torch.rand(k_a, k_b, generator=gen(seed), dtype=F64)
    if seed % 2:  # make the argmax fast path applicable
        c[torch.arange(min(k_a, k_b)), torch.arange(min(k_a, k_b))] += 1.0
    weight = c.clamp(min=floor) + alignment.OUTLIER_TIE_BREAK * c
    rows, cols = alignment._max_assignment(c, floor)
    assert rows.numel() == min(k_a, k_b) == len(set(cols.tolist())) == len(set(rows.tolist()))
    assert torch.equal(rows, rows.sort().values)
    if k_a <= k_b:
        best = max(weight[range(k_a), list(p)].sum() for p in permutations(range(k_b), k_a))
    else:
        best = max(weight[list(p), range(k_b)].sum() for p in permutations(range(k_a), k_b))
    assert weight[rows, cols].sum().item() == pytest.approx(best.item(), abs=1e-12)


def test_align_large_codebook_uses_signature_start_and_argmax_fast_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_hungarian(*args: object, **kwargs: object) -> None:
        raise AssertionError("linear_sum_assignment should not run for an exact copy")

    monkeypatch.setattr(alignment, "linear_sum_assignment", no_hungarian)
    g = gen(7)
    a = unit_axes(512, 48, g)
    rotation = random_orthogonal(48, g, det=1.0)
    b, partner, _ = shuffled_copy(a, rotation, g)
    result = align_projective(a, b, null_trials=0)
    assert result.start == "signature"
    assert result.iterations == 1
    assert torch.equal(result.matching[:, 1], partner)
    assert sign_of_match(result.rotation, rotation)[1] < 1e-9


@pytest.mark.slow
def test_z_score_separates_copies_from_independent_codebooks() -> None:
    for seed in range(3):
        g = gen(seed)
        a = unit_axes(24, 6, g)
        b, _, _ = shuffled_copy(a, random_orthogonal(6, g, det=1.0), g)
        copy = align_projective(a, b, null_trials=16, seed=seed)
        unrelated = align_projective(a, unit_axes(24, 6, g), null_trials=16, seed=seed)
        assert copy.z_score is not None and copy.z_score < -3
        assert unrelated.z_score is not None and abs(unrelated.z_score) < 3
        assert copy.null_mean_deg == unrelated.null_mean_deg  # same cached null
        assert unrelated.null_std_deg is not None and unrelated.null_std_deg > 0


def test_null_distribution_is_cached() -> None:
    g = gen(11)
    a, b = unit_axes(10, 4, g), unit_axes(12, 4, g)
    first = align_projective(a, b, null_trials=4, seed=5)
    hits = alignment._null_fits.cache_info().hits
    second = align_projective(a.flip(0), b, null_trials=4, seed=5)
    assert alignment._null_fits.cache_info().hits == hits + 1
    assert (first.null_mean_deg, first.null_std_deg) == (second.null_mean_deg, second.null_std_deg)


@pytest.mark.parametrize(
    ("source", "target", "kwargs"),
    [
        (torch.ones(3, 4), torch.ones(3, 5), {}),
        (torch.ones(4), torch.ones(3, 4), {}),
        (torch.ones(0, 4), torch.ones(3, 4), {}),
        (torch.ones(3, 4), torch.full((3, 4), math.inf), {}),
        (torch.zeros(3, 4), torch.ones(3, 4), {}),
        (torch.ones(3, 4), torch.ones(3, 4), {"null_trials": 1}),
        (torch.ones(3, 4), torch.ones(3, 4), {"n_starts": 0}),
    ],
)
def test_align_rejects_bad_input(
    source: torch.Tensor, target: torch.Tensor, kwargs: dict[str, int]
) -> None:
    with pytest.raises(ValueError):
        align_projective(source, target, **kwargs)


def test_align_single_axis_codebooks() -> None:
    result = align_projective(torch.tensor([[0.0, 2.0]]), torch.tensor([[1.0, 0.0]]), null_trials=0)
    assert result.matching.tolist() == [[0, 0]]
    assert result.mean_residual_deg < 1e-9
    # One axis always aligns exactly, so the null has no spread and there is no z-score.
    assert align_projective(torch.ones(1, 3), torch.ones(4, 3), null_trials=3).z_score is None
