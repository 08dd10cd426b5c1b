"""Images ↔ patch rows, padding to the patch grid, and raster tiling of the patch grid.

Patch layout follows upstream exactly (spec §A.1): an image (B, C, H, W) is cut into a gh × gw
grid of ps × ps patches, listed in raster order (row-major over the grid); each patch vector is
channel-major, then row, then column inside the patch. Tiling groups the patch grid into
rectangles and always re-assembles rows at their global raster positions, fixing upstream's
tile-major ordering bug (spec §A.14, H.14).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch.nn.functional import pad

Tile = tuple[int, int, int, int]
"""(r0, r1, c0, c1): the patch rows r0 ≤ r < r1 and patch columns c0 ≤ c < c1 of one tile."""


def extract_patches(x: torch.Tensor, ps: int) -> torch.Tensor:
    """Cut images into non-overlapping patches, raster order, upstream vector layout.

    Args:
        x: (B, C, H, W) finite images with H and W multiples of ``ps``.
        ps: patch side in pixels.

    Returns:
        (B, N, C·ps²) with N = (H/ps)·(W/ps); patch n = i·gw + j covers pixel rows
        i·ps … i·ps+ps−1 and columns j·ps … j·ps+ps−1, flattened as (C, ps, ps).

    Raises:
        ValueError: x is not 4-D, H or W is not a multiple of ps, or x is not finite.
    """
    if x.ndim != 4:
        raise ValueError(f"expected images of shape (B, C, H, W), got shape {tuple(x.shape)}")
    B, C, H, W = x.shape
    _check_divisible(H, W, ps)
    _check_finite(x, "images")
    gh, gw = H // ps, W // ps
    p = x.reshape(B, C, gh, ps, gw, ps).permute(0, 2, 4, 1, 3, 5)  # (B, gh, gw, C, ps, ps)
    return p.reshape(B, gh * gw, C * ps * ps)


def stitch_patches(p: torch.Tensor, C: int, H: int, W: int, ps: int) -> torch.Tensor:
    """Exact inverse of :func:`extract_patches`: (B, N, C·ps²) → (B, C, H, W).

    Raises:
        ValueError: p is not 3-D, its shape does not fit (C, H, W, ps), H or W is not a
            multiple of ps, or p is not finite.
    """
    if p.ndim != 3:
        raise ValueError(f"expected patches of shape (B, N, C·ps²), got shape {tuple(p.shape)}")
    _check_divisible(H, W, ps)
    gh, gw = H // ps, W // ps
    if p.shape[1:] != (gh * gw, C * ps * ps):
        raise ValueError(
            f"patches of shape {tuple(p.shape)} do not tile a {C}×{H}×{W} image with ps={ps}: "
            f"expected (B, {gh * gw}, {C * ps * ps})"
        )
    _check_finite(p, "patches")
    x = p.reshape(-1, gh, gw, C, ps, ps).permute(0, 3, 1, 4, 2, 5)  # (B, C, gh, ps, gw, ps)
    return x.reshape(-1, C, H, W)


def pad_to_multiple(
    x: torch.Tensor, ps: int, mode: Literal["reflect", "replicate"] = "reflect"
) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad the bottom and right edges of (B, C, H, W) images up to multiples of ``ps``.

    Only the bottom/right are padded, so every patch of the original grid keeps its raster
    position. Reflect padding needs the pad to be shorter than the side it mirrors; when an
    image is too small for that (pad ≥ H or pad ≥ W, e.g. H = 1) replicate padding is used.

    Returns:
        (padded (B, C, H', W') with H' = ⌈H/ps⌉·ps and W' = ⌈W/ps⌉·ps, (H, W)); x itself
        when no padding is needed. Pass (H, W) to :func:`crop` to undo.
    """
    if x.ndim != 4:
        raise ValueError(f"expected images of shape (B, C, H, W), got shape {tuple(x.shape)}")
    if ps < 1:
        raise ValueError(f"patch size must be ≥ 1, got {ps}")
    H, W = x.shape[-2:]
    pad_h, pad_w = -H % ps, -W % ps
    if pad_h == pad_w == 0:
        return x, (H, W)
    if mode == "reflect" and (pad_h >= H or pad_w >= W):
        mode = "replicate"
    return pad(x, (0, pad_w, 0, pad_h), mode=mode), (H, W)


def crop(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Top-left ``size`` = (H, W) pixels of (..., H', W'); undoes :func:`pad_to_multiple`."""
    H, W = size
    if x.shape[-2] < H or x.shape[-1] < W:
        raise ValueError(f"cannot crop {tuple(x.shape[-2:])} to the larger size {(H, W)}")
    return x[..., :H, :W]


def cut_padded(
    x: torch.Tensor, ps: int
) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
    """Pad (B, C, H, W) images up to multiples of ``ps`` (:func:`pad_to_multiple`) and cut them.

    Returns:
        (patches (B, N, C·ps²) in raster order, ``rebuild``): ``rebuild`` maps patches of that
        shape back to images (B, C, H, W), stitched and cropped to the input size.
    """
    padded, size = pad_to_multiple(x, ps)
    C, H, W = padded.shape[1:]
    return extract_patches(padded, ps), lambda p: crop(stitch_patches(p, C, H, W, ps), size)


def tile_grid(gh: int, gw: int, tile_patches: int) -> list[Tile]:
    """Cover a gh × gw patch grid with tiles of at most tile_patches × tile_patches patches.

    Tiles are listed in raster order of tiles; those on the bottom and right edges are smaller
    when the grid is not a multiple of ``tile_patches`` (no padding). Every grid cell lies in
    exactly one tile.
    """
    if gh < 1 or gw < 1:
        raise ValueError(f"patch grid must be at least 1×1, got {gh}×{gw}")
    if tile_patches < 1:
        raise ValueError(f"tile_patches must be ≥ 1, got {tile_patches}")
    return [
        (r0, min(r0 + tile_patches, gh), c0, min(c0 + tile_patches, gw))
        for r0 in range(0, gh, tile_patches)
        for c0 in range(0, gw, tile_patches)
    ]


def split_tiles(rows: torch.Tensor, tiles: list[Tile], gh: int, gw: int) -> list[torch.Tensor]:
    """Per-patch rows (B, gh·gw, ...) in raster order → one (B, n_t, ...) tensor per tile.

    Inside a tile, rows stay in raster order of the tile's own sub-grid. Inverse of
    :func:`assemble_tiles`.
    """
    if rows.ndim < 2 or rows.shape[1] != gh * gw:
        raise ValueError(f"expected rows of shape (B, {gh * gw}, ...), got {tuple(rows.shape)}")
    grid = rows.reshape(rows.shape[0], gh, gw, *rows.shape[2:])
    return [grid[:, r0:r1, c0:c1].flatten(1, 2) for r0, r1, c0, c1 in tiles]


def assemble_tiles(
    per_tile_rows: list[torch.Tensor], tiles: list[Tile], gh: int, gw: int
) -> torch.Tensor:
    """Place each tile's rows at their global raster positions: → (B, gh·gw, ...).

    Args:
        per_tile_rows: one (B, n_t, ...) tensor per tile, n_t = (r1 − r0)·(c1 − c0), rows in
            raster order of the tile's sub-grid (as :func:`split_tiles` returns them).
        tiles: the tiles, which must cover the gh × gw grid exactly once.

    Returns:
        (B, gh·gw, ...) where row i·gw + j is the row of patch (i, j), whichever tile held it.
        Differentiable (a gather).
    """
    if not tiles or len(per_tile_rows) != len(tiles):
        raise ValueError(f"got {len(per_tile_rows)} row blocks for {len(tiles)} tiles")
    raster = torch.arange(gh * gw).reshape(gh, gw)
    blocks = []
    for rows, (r0, r1, c0, c1) in zip(per_tile_rows, tiles, strict=True):
        block = raster[r0:r1, c0:c1].flatten()
        if rows.ndim < 2 or rows.shape[1] != len(block):
            raise ValueError(
                f"tile {(r0, r1, c0, c1)} holds {len(block)} patches, "
                f"got rows of shape {tuple(rows.shape)}"
            )
        blocks.append(block)
    tile_major = torch.cat(blocks)  # raster index of each concatenated row
    if not torch.equal(tile_major.sort().values, torch.arange(gh * gw)):
        raise ValueError(f"tiles do not cover the {gh}×{gw} patch grid exactly once")
    stacked = torch.cat(per_tile_rows, dim=1)  # (B, gh·gw, ...), tile-major
    return stacked[:, tile_major.argsort().to(stacked.device)]


def _check_divisible(H: int, W: int, ps: int) -> None:
    if ps < 1:
        raise ValueError(f"patch size must be ≥ 1, got {ps}")
    if H % ps or W % ps:
        raise ValueError(
            f"image size {H}×{W} is not a multiple of the patch size {ps}; "
            "pad it first (pad_to_multiple)"
        )


def _check_finite(x: torch.Tensor, what: str) -> None:
    """Refuse NaN or ±inf. On the GPU the check reads a result back, which stalls the queue, so
    it runs only outside autograd (encoding, extraction, features); a training step (grad
    enabled) or a captured CUDA graph is not checked, and a NaN there shows in its loss."""
    if x.is_cuda and (torch.is_grad_enabled() or torch.cuda.is_current_stream_capturing()):
        return
    if not torch.isfinite(x).all():
        raise ValueError(f"{what} contain NaN or ±inf")


def check_images(x: torch.Tensor, channels: int, patch_size: int = 1) -> None:
    """Refuse what a producer cannot take as images, naming the problem: not (B, C, H, W), the
    wrong channel count, a side below one ``patch_size`` patch, a non-float dtype."""
    if x.ndim != 4:
        raise ValueError(f"expected images of shape (B, C, H, W), got shape {tuple(x.shape)}")
    if x.shape[1] != channels:
        raise ValueError(f"expected {channels} channels, got {x.shape[1]} (shape {tuple(x.shape)})")
    if min(x.shape[-2:]) < patch_size:
        raise ValueError(
            f"image {x.shape[-2]}×{x.shape[-1]} is smaller than one {patch_size}×{patch_size} patch"
        )
    if not x.is_floating_point():
        raise ValueError(f"expected floating-point images, got dtype {x.dtype}")


def check_rows(m: torch.Tensor, grid: tuple[int, int], rows: int, dim: int) -> None:
    """Refuse rows that are not (B, gh·gw, V, D) for a gh × gw grid of V rows in R^D."""
    gh, gw = grid
    if m.ndim != 4 or tuple(m.shape[1:]) != (gh * gw, rows, dim):
        raise ValueError(
            f"expected rows (B, {gh * gw}, {rows}, {dim}) for a {gh}×{gw} grid, "
            f"got shape {tuple(m.shape)}"
        )
