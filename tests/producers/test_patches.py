"""Patch extraction/stitching in upstream order, padding to the grid, raster tiling."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from strategies import gen, seeds

from geolip.producers.patches import (
    assemble_tiles,
    crop,
    cut_padded,
    extract_patches,
    pad_to_multiple,
    split_tiles,
    stitch_patches,
    tile_grid,
)

small = st.integers(1, 4)


def images(b: int, c: int, h: int, w: int, seed: int) -> torch.Tensor:
    return torch.randn(b, c, h, w, generator=gen(seed), dtype=torch.float64)


@given(b=small, c=small, ps=st.integers(1, 5), gh=small, gw=small, seed=seeds)
def test_stitch_inverts_extract(b: int, c: int, ps: int, gh: int, gw: int, seed: int) -> None:
    x = images(b, c, gh * ps, gw * ps, seed)
    p = extract_patches(x, ps)
    assert p.shape == (b, gh * gw, c * ps * ps)
    assert torch.equal(stitch_patches(p, c, gh * ps, gw * ps, ps), x)
    assert torch.equal(extract_patches(stitch_patches(p, c, gh * ps, gw * ps, ps), ps), p)


def test_extract_matches_an_explicit_loop_over_the_spec_order() -> None:
    # §A.1: patches in raster order over the grid; inside, channel-major, then row, then column.
    b, c, ps, gh, gw = 2, 3, 2, 3, 4
    x = images(b, c, gh * ps, gw * ps, seed=1)
    p = extract_patches(x, ps)
    for n in range(b):
        for i in range(gh):
            for j in range(gw):
                expected = [
                    x[n, ch, i * ps + r, j * ps + s]
                    for ch in range(c)
                    for r in range(ps)
                    for s in range(ps)
                ]
                assert torch.equal(p[n, i * gw + j], torch.stack(expected))


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (torch.zeros(3, 8, 8), "shape"),
        (torch.zeros(1, 3, 8, 6), "not a multiple of the patch size 4"),
        (torch.full((1, 1, 4, 4), float("nan")), "NaN"),
        (torch.full((1, 1, 4, 4), float("inf")), "NaN or ±inf"),
    ],
)
def test_extract_refuses_bad_input(x: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        extract_patches(x, 4)


def test_stitch_refuses_patches_that_do_not_fit() -> None:
    with pytest.raises(ValueError, match=r"expected \(B, 4, 12\)"):
        stitch_patches(torch.zeros(1, 3, 12), 3, 4, 4, 2)
    with pytest.raises(ValueError, match="not a multiple"):
        stitch_patches(torch.zeros(1, 4, 12), 3, 4, 5, 2)
    with pytest.raises(ValueError, match="NaN"):
        stitch_patches(torch.full((1, 4, 12), float("nan")), 3, 4, 4, 2)


@given(h=st.integers(1, 20), w=st.integers(1, 20), ps=st.integers(1, 6), seed=seeds)
def test_pad_then_crop_round_trips(h: int, w: int, ps: int, seed: int) -> None:
    x = images(2, 3, h, w, seed)
    padded, size = pad_to_multiple(x, ps)
    assert size == (h, w)
    assert padded.shape[-2] % ps == 0 and padded.shape[-1] % ps == 0
    assert padded.shape[-2] - h < ps and padded.shape[-1] - w < ps
    assert torch.equal(crop(padded, size), x)


def test_pad_reflects_and_falls_back_to_replicate_on_tiny_images() -> None:
    x = torch.arange(5.0).reshape(1, 1, 5, 1).expand(1, 1, 5, 4)
    padded, _ = pad_to_multiple(x, 4)
    assert padded[0, 0, :, 0].tolist() == [0, 1, 2, 3, 4, 3, 2, 1]  # reflect, edge not repeated
    tiny = torch.arange(4.0).reshape(1, 1, 1, 4)  # one row: a 3-row reflection is impossible
    padded, _ = pad_to_multiple(tiny, 4)
    assert torch.equal(padded, tiny.expand(1, 1, 4, 4))
    assert pad_to_multiple(x, 1)[0] is x


@given(gh=st.integers(1, 12), gw=st.integers(1, 12), t=st.integers(1, 6))
def test_tile_grid_covers_the_grid_exactly_once(gh: int, gw: int, t: int) -> None:
    cover = torch.zeros(gh, gw, dtype=torch.int64)
    for r0, r1, c0, c1 in tile_grid(gh, gw, t):
        assert 0 <= r0 < r1 <= gh and 0 <= c0 < c1 <= gw
        assert r1 - r0 <= t and c1 - c0 <= t
        cover[r0:r1, c0:c1] += 1
    assert torch.equal(cover, torch.ones_like(cover))


@given(gh=st.integers(1, 9), gw=st.integers(1, 9), t=st.integers(1, 5), seed=seeds)
def test_assemble_tiles_inverts_split_tiles(gh: int, gw: int, t: int, seed: int) -> None:
    rows = torch.randn(2, gh * gw, 3, 2, generator=gen(seed))
    tiles = tile_grid(gh, gw, t)
    assert torch.equal(assemble_tiles(split_tiles(rows, tiles, gh, gw), tiles, gh, gw), rows)


def test_raster_reassembly_differs_from_upstream_tile_major_concatenation() -> None:
    gh = gw = 4
    rows = torch.arange(gh * gw).reshape(1, gh * gw)
    tiles = tile_grid(gh, gw, 2)
    pieces = split_tiles(rows, tiles, gh, gw)
    assert pieces[0].tolist() == [[0, 1, 4, 5]]  # the top-left 2×2 tile, raster inside
    assert not torch.equal(torch.cat(pieces, dim=1), rows)  # upstream's bug (§A.14)
    assert torch.equal(assemble_tiles(pieces, tiles, gh, gw), rows)


def test_assemble_tiles_refuses_a_bad_tiling() -> None:
    rows = torch.zeros(1, 4)
    with pytest.raises(ValueError, match="exactly once"):
        assemble_tiles([rows[:, :2], rows[:, :2]], [(0, 1, 0, 2), (0, 1, 0, 2)], 2, 2)
    with pytest.raises(ValueError, match="holds 2 patches"):
        assemble_tiles([rows[:, :3], rows[:, :1]], [(0, 1, 0, 2), (1, 2, 0, 2)], 2, 2)
    with pytest.raises(ValueError, match="tile_patches"):
        tile_grid(2, 2, 0)


@given(h=st.integers(1, 9), w=st.integers(1, 9), ps=st.integers(1, 4))
def test_cut_padded_rebuilds_the_images_it_cut(h: int, w: int, ps: int) -> None:
    x = torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(h * 10 + w))
    patches, rebuild = cut_padded(x, ps)
    n = -(-h // ps) * -(-w // ps)
    assert patches.shape == (2, n, 3 * ps * ps)
    assert torch.equal(rebuild(patches), x)
