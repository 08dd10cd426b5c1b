"""Merge, diff, extend, align and quality of codebooks: the algebra's invariants."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from strategies import gen, random_orthogonal, random_rows, seeds, separated_axes, sign_of_match

from geolip import Codebook, IncompatibleCodebooksError
from geolip.solvers.projective import projective_angle


def _as_set_equal(a: torch.Tensor, b: torch.Tensor, tol_deg: float) -> bool:
    """Every row of a has a partner in b within tol_deg, and vice versa (projectively)."""
    ang = torch.rad2deg(projective_angle(a.double(), b.double()))
    return bool(
        (ang.min(dim=1).values <= tol_deg).all() and (ang.min(dim=0).values <= tol_deg).all()
    )


def _core_and_novel(seed: int, d: int, n_core: int, n_a: int, n_b: int):
    """Axes ≥ 20° apart, split into a shared core and novel parts for A and for B."""
    pool = separated_axes(n_core + n_a + n_b, d, gen(seed), min_deg=20.0)
    core, only_a, only_b = pool[:n_core], pool[n_core : n_core + n_a], pool[n_core + n_a :]
    return core, only_a, only_b


@pytest.mark.slow
@given(seed=seeds, d=st.integers(3, 6), n_a=st.integers(0, 3), n_b=st.integers(0, 3))
def test_merge_diff_laws(seed: int, d: int, n_a: int, n_b: int) -> None:
    core, only_a, only_b = _core_and_novel(seed, d, 3 * d, n_a, n_b)
    perm = torch.randperm(core.shape[0] + n_b, generator=torch.Generator().manual_seed(seed))
    a = Codebook.from_axes(torch.cat([core, only_a]), name="a")
    b = Codebook.from_axes(torch.cat([core, only_b])[perm] * -1, name="b")

    ab, ba = a.merge(b, tol_deg=2.0), b.merge(a, tol_deg=2.0)
    assert torch.equal(ab.axes[: a.size], a.axes)  # merge keeps A's indices, bit for bit
    assert ab.size == a.size + n_b and ba.size == b.size + n_a
    assert _as_set_equal(ab.axes, ba.axes, tol_deg=1e-3)  # commutative as sets
    assert a.merge(a).id == a.id  # merge(A, A) = A
    assert ab.merge(b, tol_deg=2.0).id == ab.id  # idempotent

    assert len(a.diff(a)) == 0
    novel = ab.diff(a, tol_deg=2.0)
    assert novel.indices.tolist() == list(range(a.size, a.size + n_b))
    if n_b:
        assert _as_set_equal(novel.axes, only_b, tol_deg=1e-3)
        assert (novel.angles_deg > 2.0).all()
        assert novel.codebook is not None and novel.codebook.meta.lineage.operation == "diff"
    else:
        assert novel.codebook is None
    assert ab.meta.lineage.operation == "merge"
    assert ab.meta.lineage.parents == [a.id, b.id]
    assert ab.meta.lineage.parameters["added"] == n_b


def test_merge_aligns_other_into_self_frame() -> None:
    core = separated_axes(16, 4, gen(0), min_deg=15.0)
    extra = separated_axes(1, 4, gen(99), 20.0)
    a = Codebook.from_axes(core)
    r = random_orthogonal(4, gen(1), 1.0)
    b = Codebook.from_axes(torch.cat([core, extra]) @ r.T)  # same axes, other frame, plus one
    merged = a.merge(b, tol_deg=1.0)
    assert merged.size == 17
    assert torch.rad2deg(projective_angle(merged.axes[16:].double(), extra)).item() < 1e-3
    unaligned = a.merge(b, tol_deg=1.0, align=False)
    assert unaligned.size > 17  # without alignment the rotated copy looks novel


def test_extend_appends_and_never_renumbers() -> None:
    a = Codebook.from_axes(random_rows(5, 3, 0), stats={"usage": torch.arange(5.0)})
    new = random_rows(2, 3, 1)
    e = a.extend(new)
    assert torch.equal(e.axes[:5], a.axes)
    assert torch.allclose(e.axes[5:].double().abs(), Codebook.from_axes(new).axes.double().abs())
    assert e.meta.lineage.operation == "extend" and e.meta.lineage.parents == [a.id]
    assert e.stats == {}  # the new axes have no usage: stats are not invented
    other = Codebook.from_axes(new, stats={"usage": torch.tensor([7.0, 8.0])})
    e2 = a.extend(other)
    assert e2.meta.lineage.parents == [a.id, other.id]
    assert e2.stats["usage"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 7.0, 8.0]


def test_incompatible_dimensions_raise_with_report() -> None:
    a, b = Codebook.from_axes(random_rows(5, 3, 0)), Codebook.from_axes(random_rows(5, 4, 0))
    for op in (a.merge, a.diff, a.align, a.extend):
        with pytest.raises(IncompatibleCodebooksError, match="D=3") as info:
            op(b)
        assert info.value.report["dim"] == [3, 4]
        assert info.value.report["compatible"] is False
    with pytest.raises(IncompatibleCodebooksError):
        a.extend(random_rows(2, 4, 0))


@given(seed=seeds, d=st.integers(3, 8), proper=st.booleans())
def test_align_recovers_rotation_permutation_and_signs(seed: int, d: int, proper: bool) -> None:
    k = 3 * d
    a = Codebook.from_axes(separated_axes(k, d, gen(seed), min_deg=8.0))
    r = random_orthogonal(d, gen(seed + 1), 1.0 if proper else -1.0)
    perm = torch.randperm(k, generator=gen(seed + 2))
    rotated = a.axes.double() @ r.T
    b = Codebook.from_axes(rotated[perm])  # canonical sign flips some rows
    res = a.align(b, null_trials=0)
    # R and -R act identically on RP^(D-1); the solver returns the one with trace >= 0
    global_sign, error = sign_of_match(res.rotation, r)
    assert error < 1e-6
    inverse = torch.argsort(perm)
    assert res.matching[:, 1].tolist() == inverse.tolist()
    truth = torch.sign((rotated * b.axes.double()[inverse]).sum(dim=1)).long()
    assert torch.equal(res.signs, global_sign * truth)
    assert res.residual_deg.max() < 1e-3


def test_aligned_to_records_lineage_and_lands_on_reference() -> None:
    a = Codebook.from_axes(separated_axes(12, 4, gen(3), min_deg=10.0))
    b = a.rotate(random_orthogonal(4, gen(4), 1.0))
    back = b.aligned_to(a, null_trials=0)
    assert back.id == a.id or _as_set_equal(back.axes, a.axes, 1e-3)
    assert back.meta.lineage.operation == "align"
    assert back.meta.lineage.parents == [b.id, a.id]
    assert a.distance(b) < 1e-6


@pytest.mark.slow
def test_quality_reports_deviation_with_null() -> None:
    cb = Codebook.from_axes(random_rows(64, 8, 0))
    q = cb.assess(null_trials=100)
    assert q.null.kind == "axes" and q.null.n_trials == 100
    assert q.statute == "uniform" and q.clean
    assert 0.0 < q.null.percentile < 100.0
    assert q.null.deviation_p5 <= q.null.deviation_mean <= q.null.deviation_p95
    frame = Codebook.from_axes(torch.eye(8))  # maximally spread: far above every null trial
    assert frame.assess(null_trials=100).null.percentile == 100.0
