"""Editing in the vocabulary of axes: each edit changes exactly what it says, decoding at any
size, and refusals before any work."""

from __future__ import annotations

import pytest
import torch
from tiny_producer import tiny_codebook, tiny_producer

from geolip import Codebook
from geolip.downstream.diffusion import AxisDenoiser, DenoiserConfig, DiffusionModel
from geolip.downstream.editing import (
    Inpaint,
    Interpolate,
    SubstituteAxes,
    ZeroAxes,
    edit_codes,
    process_at_scale,
    slerp_rows,
)
from geolip.downstream.tokenizer import GeolipImageTokenizer
from geolip.errors import IncompatibleInputError

C, V = 3, 8


@pytest.fixture(scope="module")
def tok() -> GeolipImageTokenizer:
    producer = tiny_producer(0)
    return GeolipImageTokenizer(producer, tiny_codebook(producer), 1)


@pytest.fixture(scope="module")
def dm(tok: GeolipImageTokenizer) -> DiffusionModel:
    config = DenoiserConfig(
        axis_tokens=2 * tok.codebook.size, rows_per_patch=V, dim=16, depth=1, heads=2
    )
    torch.manual_seed(0)
    return DiffusionModel(AxisDenoiser(config).eval(), tok, (), (8, 8))


def images(n: int = 2, size: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, C, size, size, generator=torch.Generator().manual_seed(seed))


def plain(tok: GeolipImageTokenizer, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    idx, signs, _, _ = edit_codes(x, ZeroAxes(frozenset()), tokenizer=tok)
    return idx, signs


def test_no_edit_is_the_tokenizer_round_trip(tok: GeolipImageTokenizer) -> None:
    x = images()
    idx, signs = plain(tok, x)
    expected = tok.axis_codes(x)
    assert torch.equal(idx, expected[0]) and torch.equal(signs, expected[1])
    decoded = torch.stack(tok.batch_decode(tok(x, return_tensors="pt")["input_ids"]))
    assert torch.equal(process_at_scale(x, ZeroAxes(frozenset()), tokenizer=tok), decoded)


def test_zeroed_axes_leave_the_codes_and_nothing_else_changes(tok: GeolipImageTokenizer) -> None:
    x = images()
    idx, _ = plain(tok, x)
    used = idx.flatten().bincount().argsort(descending=True)[:2].tolist()  # most used two
    new, _, _, _ = edit_codes(x, ZeroAxes(frozenset(used)), tokenizer=tok)
    hit = torch.isin(idx, torch.tensor(used))
    assert bool(hit.any()) and not bool(torch.isin(new, torch.tensor(used)).any())
    assert torch.equal(new[~hit], idx[~hit])
    out = process_at_scale(x, ZeroAxes(frozenset(used)), tokenizer=tok)
    assert not torch.allclose(out, process_at_scale(x, ZeroAxes(frozenset()), tokenizer=tok))


def test_substitution_codes_j_where_i_was_with_the_same_sign(tok: GeolipImageTokenizer) -> None:
    x = images()
    idx, signs = plain(tok, x)
    i = int(idx.flatten().bincount().argmax())
    j = (i + 1) % tok.codebook.size
    new, new_signs, _, _ = edit_codes(x, SubstituteAxes({i: j}), tokenizer=tok)
    was = idx == i
    assert bool((new[was] == j).all()) and torch.equal(new_signs[was], signs[was])
    assert not bool((new == i).any())


def test_interpolation_ends_at_both_images(tok: GeolipImageTokenizer) -> None:
    a, b = images(seed=1), images(seed=2)
    none = ZeroAxes(frozenset())
    start = process_at_scale(a, Interpolate(b, 0.0), tokenizer=tok)
    end = process_at_scale(a, Interpolate(b, 1.0), tokenizer=tok)
    assert torch.equal(start, process_at_scale(a, none, tokenizer=tok))
    assert torch.equal(end, process_at_scale(b, none, tokenizer=tok))
    middle = process_at_scale(a, Interpolate(b, 0.5), tokenizer=tok)
    assert not torch.equal(middle, start) and not torch.equal(middle, end)


def test_slerp_stays_on_the_sphere_at_equal_angles() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(50, 4, generator=g), dim=-1)
    b = torch.nn.functional.normalize(torch.randn(50, 4, generator=g), dim=-1)
    m = slerp_rows(a, b, 0.5)
    assert torch.allclose(m.norm(dim=-1), torch.ones(50), atol=1e-5)
    assert torch.allclose((m * a).sum(-1), (m * b).sum(-1), atol=1e-5)
    assert torch.allclose(slerp_rows(a, a, 0.3), a, atol=1e-6)


@pytest.mark.slow
def test_inpainting_resamples_only_the_box(tok: GeolipImageTokenizer, dm: DiffusionModel) -> None:
    x = images(size=16)  # 4 × 4 patches
    idx, signs = plain(tok, x)
    box = Inpaint((0.0, 0.0, 0.5, 0.5), seed=3)
    new, new_signs, grid, _ = edit_codes(x, box, tokenizer=tok, diffusion=dm)
    inside = torch.zeros(grid, dtype=torch.bool)
    inside[:2, :2] = True
    inside = inside.flatten()
    assert torch.equal(new[:, ~inside], idx[:, ~inside])
    assert torch.equal(new_signs[:, ~inside], signs[:, ~inside])
    assert not torch.equal(new[:, inside], idx[:, inside])
    again, _, _, _ = edit_codes(x, box, tokenizer=tok, diffusion=dm)
    assert torch.equal(again, new)  # seeded


def test_decoding_at_any_scale_and_size(tok: GeolipImageTokenizer) -> None:
    x = images(size=8)
    edit = ZeroAxes(frozenset({0}))
    assert process_at_scale(x, edit, 2.0, tokenizer=tok).shape == (2, C, 16, 16)
    assert process_at_scale(x, edit, 1.0, tokenizer=tok, size=(20, 12)).shape == (2, C, 20, 12)
    assert process_at_scale(x[0], edit, 1.5, tokenizer=tok).shape == (C, 12, 12)
    _, _, grid, work = edit_codes(x, edit, 2.0, tokenizer=tok)
    assert grid == (4, 4) and work == (16, 16)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda x: ZeroAxes(frozenset({999})), "zeroed axis 999 is outside"),
        (lambda x: SubstituteAxes({0: -1}), "target axis -1 is outside"),
        (lambda x: SubstituteAxes({0: 2, 1: 2}), "same axis"),
        (lambda x: Interpolate(x, 1.5), r"t must be in \[0, 1\]"),
        (lambda x: Interpolate(x[:1], 0.5), "same shape"),
        (lambda x: Inpaint((0.5, 0.0, 0.2, 1.0)), "top < bottom"),
        (lambda x: Inpaint((0.0, 0.0, 0.5, 0.5)), "needs a diffusion model"),
    ],
)
def test_bad_edits_are_refused_before_any_work(
    tok: GeolipImageTokenizer, make, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    x = images()

    def no_work(*_: object) -> None:
        raise AssertionError("encoded before refusing")

    monkeypatch.setattr(tok.producer, "encode_rows", no_work)
    with pytest.raises(IncompatibleInputError, match=message):
        process_at_scale(x, make(x), tokenizer=tok)


def test_wrong_channels_scale_and_foreign_diffusion_are_refused(
    tok: GeolipImageTokenizer, dm: DiffusionModel
) -> None:
    edit = ZeroAxes(frozenset())
    with pytest.raises(IncompatibleInputError, match="1 channel"):
        process_at_scale(torch.zeros(1, 1, 8, 8), edit, tokenizer=tok)
    with pytest.raises(IncompatibleInputError, match="smaller than one 4×4 patch"):
        process_at_scale(images(), edit, 0.25, tokenizer=tok)
    other = GeolipImageTokenizer(tok.producer, Codebook.random(6, 4, seed=1), 1)
    with pytest.raises(IncompatibleInputError, match="another tokenizer"):
        process_at_scale(images(), Inpaint((0, 0, 1, 1)), tokenizer=other, diffusion=dm)
