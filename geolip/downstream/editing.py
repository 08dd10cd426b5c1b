"""Editing images in the vocabulary of axes, at any scale.

:func:`process_at_scale` resizes the images by ``scale`` (the working size, where the edit
happens), encodes them to rows (B, P, V, D), applies one edit, codes every row by its top-k
axes as the tokenizer does, and decodes through the producer's decoder at the working grid;
the result is cropped to the working size or, for another ``size``, resized to it (the tokens
carry the working grid's patches, no more). So "edit at 64², decode at 512²" is
``process_at_scale(x64, edit, 1, size=(512, 512))`` and "edit at 512² directly" is
``process_at_scale(x64, edit, 8)``.

The edits act on the codebook activations cos(row, axis) (B, P, V, K) before each row is coded:

    ZeroAxes({i, …})        the activations of those axes are set to 0: no row is coded with
                            them, each takes its best remaining axes instead
    SubstituteAxes({i: j})  axis i's activation moves to axis j (i's becomes 0), all at once:
                            a row coded with i is coded with j, same sign
    Inpaint(box)            the tokens of the patches overlapping ``box`` (fractions of the
                            image: top, left, bottom, right) are masked and resampled by a
                            diffusion model over the same tokenizer, the rest kept; seeded
    Interpolate(other, t)   each row is slerped toward the matching row of ``other`` (same
                            shape) by t ∈ [0, 1] on the sphere, before coding

Every input is checked before any encoding: channels, an axis outside 0..K−1, a scale or size
that gives no patch, an inpaint without a diffusion model or with one over another tokenizer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch.nn.functional import interpolate

from geolip.downstream.diffusion import DiffusionModel, SamplingOptions, sample_ids
from geolip.downstream.tokenizer import GeolipImageTokenizer
from geolip.errors import IncompatibleInputError
from geolip.solvers.linalg import sphere_normalize


@dataclass(frozen=True)
class ZeroAxes:
    """Remove these axes from the vocabulary of the edited images."""

    axes: frozenset[int]


@dataclass(frozen=True)
class SubstituteAxes:
    """Code with axis j wherever axis i was coded, for every i → j of ``mapping``."""

    mapping: Mapping[int, int]


@dataclass(frozen=True)
class Inpaint:
    """Resample the tokens of a box of patches with a diffusion model.

    Attributes:
        box: (top, left, bottom, right) as fractions of the image, 0 ≤ top < bottom ≤ 1.
        seed: the sampler's seed; label: a class (index or name) or None for none.
        options: the sampler's settings.
    """

    box: tuple[float, float, float, float]
    seed: int = 0
    label: int | str | None = None
    options: SamplingOptions = field(default_factory=SamplingOptions)


@dataclass(frozen=True)
class Interpolate:
    """Slerp every row toward the rows of ``other`` (B, C, H, W), the images' shape, by t."""

    other: torch.Tensor
    t: float


Edit = ZeroAxes | SubstituteAxes | Inpaint | Interpolate


def process_at_scale(
    images: torch.Tensor,
    edit: Edit,
    scale: float = 1.0,
    *,
    tokenizer: GeolipImageTokenizer,
    diffusion: DiffusionModel | None = None,
    size: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Edit images at ``scale`` × their size and decode them at ``size`` (module docstring).

    Args:
        images: (B, C, H, W), or one image (C, H, W).
        edit: one of :data:`Edit`.
        scale: working scale; the images are resized (bilinear, anti-aliased) to
            round(H·scale) × round(W·scale) before encoding.
        tokenizer: producer, codebook and top_k that code the rows.
        diffusion: the model that resamples an :class:`Inpaint` box.
        size: (H', W') of the output; default the working size.

    Returns:
        (B, C, H', W') float32 images (one (C, H', W') for one image).

    Raises:
        IncompatibleInputError: any input the edit cannot take, before any work.
    """
    single = images.ndim == 3
    x = images.unsqueeze(0) if single else images
    if size is not None and (len(size) != 2 or min(size) < 1):
        raise IncompatibleInputError(f"size must be two positive integers, got {size}")
    idx, signs, grid, work = edit_codes(x, edit, scale, tokenizer=tokenizer, diffusion=diffusion)
    out = tokenizer.decode_codes(idx, signs, grid, size or work)
    return out[0] if single else out


def edit_codes(
    images: torch.Tensor,
    edit: Edit,
    scale: float = 1.0,
    *,
    tokenizer: GeolipImageTokenizer,
    diffusion: DiffusionModel | None = None,
) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int], tuple[int, int]]:
    """The edited codes :func:`process_at_scale` decodes.

    Args:
        images: (B, C, H, W).

    Returns:
        (axis indices (B, P, V, k) int64, signs (B, P, V, k) ±1, grid (gh, gw), working size
        (H·scale, W·scale) rounded).
    """
    work = _working_size(images, scale, tokenizer)
    _check(images, edit, tokenizer, diffusion)
    rows = _encode(tokenizer, images, work)  # (B, P, V, D)
    if isinstance(edit, Interpolate):
        rows = slerp_rows(rows, _encode(tokenizer, edit.other, work), edit.t)
    cos = tokenizer.codebook.activations(rows, signed=True)  # (B, P, V, K)
    if isinstance(edit, ZeroAxes):
        cos[..., sorted(edit.axes)] = 0.0
    elif isinstance(edit, SubstituteAxes):
        sources, targets = list(edit.mapping), list(edit.mapping.values())
        moved = cos[..., sources].clone()
        cos[..., sources] = 0.0
        cos[..., targets] = moved
    excluded = edit.axes if isinstance(edit, ZeroAxes) else frozenset()
    idx, signs = _top_k(cos, tokenizer.top_k, excluded)
    grid = tokenizer.grid(work)
    if isinstance(edit, Inpaint):
        assert diffusion is not None
        idx, signs = _inpaint(idx, signs, grid, edit, diffusion)
    return idx, signs, grid, work


def slerp_rows(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation of unit rows (..., D) from ``a`` (t = 0) to ``b`` (t = 1).

    Rows at an angle θ go along the great circle, sin((1−t)θ)/sin θ · a + sin(tθ)/sin θ · b;
    (nearly) equal or opposite rows, where that circle is not defined, are lerped and
    normalised. Exactly ``a`` at t = 0 and ``b`` at t = 1 (after normalisation)."""
    a, b = sphere_normalize(a), sphere_normalize(b)
    if t == 0:
        return a
    if t == 1:
        return b
    dot = (a * b).sum(-1, keepdim=True).clamp(-1.0, 1.0)
    theta = torch.arccos(dot)
    sin = torch.sin(theta)
    great = (torch.sin((1 - t) * theta) * a + torch.sin(t * theta) * b) / sin.clamp(min=1e-6)
    straight = (1 - t) * a + t * b
    return sphere_normalize(torch.where(sin > 1e-4, great, straight))


def _working_size(
    x: torch.Tensor, scale: float, tokenizer: GeolipImageTokenizer
) -> tuple[int, int]:
    g = tokenizer.producer.geometry
    if x.ndim != 4:
        raise IncompatibleInputError(
            f"expected images (B, C, H, W) or (C, H, W), got {tuple(x.shape)}"
        )
    if x.shape[1] != g.channels:
        raise IncompatibleInputError(
            f"images have {x.shape[1]} channel(s), the producer takes {g.channels}"
        )
    if not scale > 0:
        raise IncompatibleInputError(f"scale must be positive, got {scale}")
    h, w = round(x.shape[-2] * scale), round(x.shape[-1] * scale)
    assert g.patch_size is not None
    if min(h, w) < g.patch_size:
        raise IncompatibleInputError(
            f"at scale {scale} the images are {h}×{w}, smaller than one "
            f"{g.patch_size}×{g.patch_size} patch"
        )
    return h, w


def _check(
    x: torch.Tensor,
    edit: Edit,
    tokenizer: GeolipImageTokenizer,
    diffusion: DiffusionModel | None,
) -> None:
    k = tokenizer.codebook.size

    def in_range(axes: list[int], what: str) -> None:
        bad = [i for i in axes if not 0 <= i < k]
        if bad:
            raise IncompatibleInputError(f"{what} axis {bad[0]} is outside 0..{k - 1}")

    if isinstance(edit, ZeroAxes):
        in_range(sorted(edit.axes), "zeroed")
        if k - len(edit.axes) < tokenizer.top_k:
            raise IncompatibleInputError(
                f"zeroing {len(edit.axes)} of {k} axes leaves fewer than top_k = "
                f"{tokenizer.top_k} to code a row with"
            )
    elif isinstance(edit, SubstituteAxes):
        in_range(list(edit.mapping), "substituted")
        in_range(list(edit.mapping.values()), "target")
        if len(set(edit.mapping.values())) != len(edit.mapping):
            raise IncompatibleInputError("two axes substituted by the same axis")
    elif isinstance(edit, Interpolate):
        if not 0 <= edit.t <= 1:
            raise IncompatibleInputError(f"interpolation t must be in [0, 1], got {edit.t}")
        if tuple(edit.other.shape) != tuple(x.shape):
            raise IncompatibleInputError(
                f"interpolate needs images of the same shape, got {tuple(x.shape)} and "
                f"{tuple(edit.other.shape)}"
            )
    elif isinstance(edit, Inpaint):
        top, left, bottom, right = edit.box
        if not (0 <= top < bottom <= 1 and 0 <= left < right <= 1):
            raise IncompatibleInputError(
                f"inpaint box (top, left, bottom, right) must be fractions with top < bottom, "
                f"left < right, got {edit.box}"
            )
        if diffusion is None:
            raise IncompatibleInputError("inpainting needs a diffusion model")
        theirs, ours = diffusion.tokenizer, tokenizer
        if (theirs.producer.producer_id, theirs.codebook.id, theirs.top_k) != (
            ours.producer.producer_id,
            ours.codebook.id,
            ours.top_k,
        ):
            raise IncompatibleInputError(
                "the diffusion model was trained on another tokenizer's tokens"
            )
        diffusion.labels(1, edit.label)  # an unknown class is refused here
    else:
        raise TypeError(f"not an edit: {type(edit).__name__}")


def _encode(
    tokenizer: GeolipImageTokenizer, x: torch.Tensor, size: tuple[int, int]
) -> torch.Tensor:
    """(B, C, H, W) resized to ``size`` → rows (B, P, V, D) float32 on the CPU."""
    x = x.float()
    if tuple(x.shape[-2:]) != size:
        x = interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    tokenizer.check_images(x)
    producer = tokenizer.producer
    with producer.frozen():
        return producer.encode_rows(x.to(producer.device)).float().cpu()


def _top_k(
    cos: torch.Tensor, k: int, excluded: frozenset[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Activations (..., K) → the top-k axes by |cos| (excluded axes never) and their signs."""
    score = cos.abs()
    if excluded:
        score[..., sorted(excluded)] = -1.0
    top = score.topk(k, dim=-1).indices
    return top, torch.where(cos.gather(-1, top) < 0, -1, 1)


def _inpaint(
    idx: torch.Tensor,
    signs: torch.Tensor,
    grid: tuple[int, int],
    edit: Inpaint,
    diffusion: DiffusionModel,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Resample the codes (B, P, V, k) of the patches overlapping the box."""
    gh, gw = grid
    top, left, bottom, right = edit.box
    r = torch.arange(gh)
    c = torch.arange(gw)
    rows = (r.double() / gh < bottom) & ((r + 1).double() / gh > top)
    cols = (c.double() / gw < right) & ((c + 1).double() / gw > left)
    inside = (rows[:, None] & cols[None, :]).flatten()  # (P,)
    b = idx.shape[0]
    ids = (2 * idx + (signs < 0)).reshape(b, -1)
    resample = inside[None, :, None, None].expand(idx.shape).reshape(b, -1)
    labels = diffusion.labels(b, edit.label)
    gen = torch.Generator().manual_seed(edit.seed)
    new = sample_ids(
        diffusion.denoiser, grid, labels, gen, edit.options, known=ids, resample=resample
    ).reshape(idx.shape)
    return new // 2, 1 - 2 * (new % 2)
