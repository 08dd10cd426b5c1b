"""Codebook construction, identity, activations and quantisation: invariants."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from strategies import dims, gen, random_orthogonal, random_rows, seeds, sizes

from geolip import Codebook, CodebookValidationError
from geolip.codebook import canonicalize_axes


def _flip_some(x: torch.Tensor, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    signs = torch.randint(0, 2, (x.shape[0], 1), generator=gen).to(x.dtype) * 2 - 1
    return x * signs


@given(k=sizes, d=dims, seed=seeds)
def test_sign_flips_leave_id_activations_and_quantize_unchanged(k: int, d: int, seed: int) -> None:
    rows = random_rows(k, d, seed)
    a = Codebook.from_axes(rows)
    b = Codebook.from_axes(_flip_some(rows, seed + 1))
    assert a.id == b.id
    assert torch.equal(a.axes, b.axes)
    probe = random_rows(7, d, seed + 2).float()
    assert torch.equal(a.activations(probe), b.activations(probe))
    assert torch.equal(a.activations(-probe), a.activations(probe))
    qa, qb = a.quantize(probe, k=min(2, k)), b.quantize(_flip_some(probe, seed + 3), k=min(2, k))
    assert torch.equal(qa.indices, qb.indices)
    assert torch.allclose(qa.confidence, qb.confidence)


@given(k=sizes, d=dims, seed=seeds, scale=st.floats(1e-3, 1e3))
def test_canonicalisation_is_idempotent_unit_and_sign_canonical(
    k: int, d: int, seed: int, scale: float
) -> None:
    once = canonicalize_axes(random_rows(k, d, seed) * scale)
    twice = canonicalize_axes(once)
    assert once.dtype == torch.float32
    assert torch.equal(once, twice)
    assert torch.allclose(once.double().norm(dim=1), torch.ones(k, dtype=torch.float64), atol=1e-6)
    first = (once.abs() > 1e-6).int().argmax(dim=1)
    assert (once[torch.arange(k), first] > 0).all()


def test_id_depends_on_axes_and_stats_not_on_name() -> None:
    rows = random_rows(5, 3, 0)
    a = Codebook.from_axes(rows, name="a")
    assert Codebook.from_axes(rows, name="b").id == a.id
    assert Codebook.from_axes(rows[[1, 0, 2, 3, 4]]).id != a.id  # order is identity
    with_stats = Codebook.from_axes(rows, stats={"usage": torch.arange(5.0)})
    assert with_stats.id != a.id
    assert len(a.id) == 64


@given(k=st.integers(2, 30), d=st.integers(2, 10), seed=seeds)
def test_activations_are_equivariant_under_rotation(k: int, d: int, seed: int) -> None:
    cb = Codebook.from_axes(random_rows(k, d, seed))
    r = random_orthogonal(d, gen(seed + 1), -1.0)
    rows = random_rows(11, d, seed + 2)
    before = cb.activations(rows)
    after = cb.rotate(r).activations(rows @ r.T)
    assert torch.allclose(before, after, atol=1e-5)
    signed = cb.activations(rows, signed=True)
    assert torch.allclose(signed.abs(), before)
    assert (signed.min() >= -1 - 1e-6) and (before.max() <= 1 + 1e-6)


def test_activations_match_explicit_cosines_and_keep_batch_shape() -> None:
    cb = Codebook.from_axes(random_rows(6, 4, 1))
    rows = random_rows(24, 4, 2).reshape(2, 3, 4, 4)
    act = cb.activations(rows)
    assert act.shape == (2, 3, 4, 6)
    unit = rows / rows.norm(dim=-1, keepdim=True)
    expected = (unit @ cb.axes.double().T).abs()
    assert torch.allclose(act, expected, atol=1e-12)
    assert act.dtype == torch.float64
    assert cb.activations(rows.float()).dtype == torch.float32


def test_quantize_returns_topk_by_absolute_cosine() -> None:
    cb = Codebook.from_axes(random_rows(10, 5, 3))
    rows = random_rows(50, 5, 4)
    q = cb.quantize(rows, k=3)
    act = cb.activations(rows)
    assert q.indices.shape == (50, 3) and q.confidence.shape == (50, 3)
    assert torch.equal(q.indices[:, 0], act.argmax(dim=-1))
    assert torch.allclose(q.confidence, act.gather(-1, q.indices))
    assert (q.confidence[:, :-1] >= q.confidence[:, 1:]).all()
    # an axis quantises to itself with full confidence, whatever its sign
    q_self = cb.quantize(-cb.axes)
    assert torch.equal(q_self.indices[:, 0], torch.arange(10))
    assert torch.allclose(q_self.confidence[:, 0], torch.ones(10), atol=1e-6)
    with pytest.raises(ValueError, match="k must be"):
        cb.quantize(rows, k=11)


@pytest.mark.parametrize(
    ("axes", "match"),
    [
        (torch.tensor([[1.0, float("nan")], [0.0, 1.0]]), "NaN"),
        (torch.tensor([[0.0, 0.0], [0.0, 1.0]]), "zero"),
        (torch.ones(3), "shape"),
        (torch.ones(3, 1), "shape"),
    ],
)
def test_from_axes_refuses_bad_rows(axes: torch.Tensor, match: str) -> None:
    with pytest.raises(CodebookValidationError, match=match):
        Codebook.from_axes(axes)


def test_rotate_refuses_non_orthogonal_and_records_lineage() -> None:
    cb = Codebook.from_axes(random_rows(8, 3, 0))
    with pytest.raises(ValueError, match="orthogonal"):
        cb.rotate(torch.eye(3) * 2)
    r = random_orthogonal(3, gen(1), 1.0)
    rotated = cb.rotate(r)
    assert rotated.meta.lineage.operation == "rotate"
    assert rotated.meta.lineage.parents == [cb.id]
    assert torch.allclose(
        rotated.axes.double().abs(), canonicalize_axes(cb.axes.double() @ r.T).double().abs()
    )


def test_stats_validation() -> None:
    rows = random_rows(4, 3, 0)
    with pytest.raises(CodebookValidationError, match="expected K=4"):
        Codebook.from_axes(rows, stats={"usage": torch.ones(3)})
    with pytest.raises(CodebookValidationError, match="stat name"):
        Codebook.from_axes(rows, stats={"axes": torch.ones(4)})
    with pytest.raises(CodebookValidationError, match="NaN"):
        Codebook.from_axes(rows, stats={"usage": torch.tensor([1.0, 2.0, float("nan"), 0.0])})


def test_random_codebook_is_seeded_and_records_lineage() -> None:
    a, b = Codebook.random(16, 5, seed=3), Codebook.random(16, 5, seed=3)
    assert a.id == b.id and a.size == 16 and a.dim == 5
    assert Codebook.random(16, 5, seed=4).id != a.id
    assert a.meta.lineage.operation == "random"
    assert a.meta.lineage.parameters == {"k": 16, "d": 5, "seed": 3}
