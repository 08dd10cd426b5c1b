"""Synthetic noise images: the 16 training types, the 16 OOD types, calibration sets (spec §A.11).

Every generator draws directly on the target device from one ``torch.Generator`` and returns a
batch (n, C, H, W) clamped to [−4, 4], as upstream. Definitions follow upstream exactly; RNG
streams do not (upstream drew image by image from numpy and the global torch RNG), so the same
seed gives different images here, from the same distributions.

Pink and brown noise (and the bottom-left quadrant of ``structural``) carry an upstream bug:
the 1/|f| filter divides the DC bin by 1e-8, so after global std normalisation each image is
three nearly constant colour planes (§0 fact 7). ``faithful=True`` keeps that definition, to
reproduce upstream numbers; the default zeroes the DC bin and normalises each image-channel to
unit std (H.2).

Equal in distribution, not in sampler: exponential and beta are drawn by their inverse CDFs.
Beyond upstream's square, even sizes: (H, W) sizes, odd sizes (the structural quadrants split at
H//2, W//2) and jpeg_like blocks of min(8, H) × min(8, W).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import torch
from torch import Tensor
from torch.nn.functional import avg_pool2d, interpolate

_Shape = tuple[int, int, int, int]  # (n, C, H, W)
CLAMP = 4.0
_EPS = 1e-8  # upstream's std guard and its DC floor


@dataclass(frozen=True)
class _Sampler:
    """Random draws of one batch: one generator, one device, one working dtype, and whether
    pink noise keeps upstream's DC bug."""

    generator: torch.Generator | None
    device: torch.device
    dtype: torch.dtype
    faithful: bool = False

    def normal(self, *shape: int) -> Tensor:
        return torch.randn(shape, generator=self.generator, device=self.device, dtype=self.dtype)

    def uniform(self, *shape: int) -> Tensor:
        """U[0, 1)."""
        return torch.rand(shape, generator=self.generator, device=self.device, dtype=self.dtype)

    def per_image(self, n: int, lo: float, hi: float) -> Tensor:
        """(n, 1, 1, 1) U(lo, hi): one parameter per image."""
        return lo + (hi - lo) * self.uniform(n, 1, 1, 1)

    def per_image_int(self, n: int, lo: int, hi: int) -> Tensor:
        """(n, 1, 1, 1) int64 uniform on [lo, hi)."""
        shape = (n, 1, 1, 1)
        return torch.randint(lo, hi, shape, generator=self.generator, device=self.device)

    def coords(self, lo: float, hi: float, h: int, w: int) -> tuple[Tensor, Tensor]:
        """Row coordinates (h, 1) and column coordinates (1, w) on linspace(lo, hi)."""
        kw = {"device": self.device, "dtype": self.dtype}
        return torch.linspace(lo, hi, h, **kw)[:, None], torch.linspace(lo, hi, w, **kw)[None, :]


_Noise = Callable[[_Sampler, _Shape], Tensor]
_Pattern = Callable[[_Sampler, int, int, int], Tensor]  # (r, n, H, W) → (n, 1, H, W)
_PER_IMAGE, _PER_CHANNEL = (1, 2, 3), (2, 3)


def _normalise(x: Tensor, dims: tuple[int, ...]) -> Tensor:
    return x / (x.std(dim=dims, keepdim=True) + _EPS)


def _symmetric(r: _Sampler, shape: _Shape) -> Tensor:
    return 2 * r.uniform(*shape) - 1


def _signs(r: _Sampler, shape: _Shape, amplitude: float) -> Tensor:
    return torch.where(r.uniform(*shape) > 0.5, amplitude, -amplitude)


def _pointwise(f: Callable[[Tensor], Tensor], source: str = "uniform") -> _Noise:
    """i.i.d. pixels: ``f`` applied to U[0, 1) (or to N with ``source="normal"``)."""
    return lambda r, shape: f(getattr(r, source)(*shape))


def _patterned(pattern: _Pattern, sigma: float) -> _Noise:
    """A per-image pattern shared by all channels plus σ·N per pixel and channel."""

    def noise(r: _Sampler, shape: _Shape) -> Tensor:
        n, _, h, w = shape
        return pattern(r, n, h, w) + sigma * r.normal(*shape)

    return noise


def _poisson(lo: float, hi: float, f: Callable[[Tensor, Tensor], Tensor]) -> _Noise:
    """λ ~ U(lo, hi) per image, k ~ Poisson(λ) per pixel, value f(k, λ)."""

    def noise(r: _Sampler, shape: _Shape) -> Tensor:
        lam = r.per_image(shape[0], lo, hi)
        return f(torch.poisson(lam.expand(shape).contiguous(), generator=r.generator), lam)

    return noise


# --- spectral ------------------------------------------------------------------------------------


def _power_law(r: _Sampler, shape: _Shape, exponent: float) -> Tensor:
    """N filtered by 1/|f|^exponent (cycles per pixel), no normalisation.

    Upstream floors |f|^exponent at 1e-8, so the DC bin (the image mean) is multiplied by 1e8
    and dominates everything else; kept when ``r.faithful``, zeroed otherwise.
    """
    h, w = shape[2:]
    fy = torch.fft.fftfreq(h, device=r.device, dtype=r.dtype)[:, None]
    fx = torch.fft.rfftfreq(w, device=r.device, dtype=r.dtype)[None, :]
    gain = 1 / (fy**2 + fx**2).pow(exponent / 2).clamp(min=_EPS)
    if not r.faithful:
        gain[0, 0].fill_(0)  # a 0-dim target: `= 0` would copy a host scalar and synchronise
    return torch.fft.irfft2(torch.fft.rfft2(r.normal(*shape)) * gain, s=(h, w))


def _coloured(exponent: float) -> _Noise:
    """Pink (1) or brown (2); unit std per image (faithful) or per image-channel (corrected)."""

    def noise(r: _Sampler, shape: _Shape) -> Tensor:
        dims = _PER_IMAGE if r.faithful else _PER_CHANNEL
        return _normalise(_power_law(r, shape, exponent), dims)

    return noise


def _wavelet(r: _Sampler, shape: _Shape) -> Tensor:
    """N with the lowest-frequency corner block of its rfft2 zeroed (upstream's mask, which
    leaves the negative row frequencies alone)."""
    h, w = shape[2:]
    spectrum = torch.fft.rfft2(r.normal(*shape))
    spectrum[..., : max(1, h // 16), : max(1, w // 16)] = 0
    return torch.fft.irfft2(spectrum, s=(h, w))


def _bilinear(size: int, cells: int, r: _Sampler) -> Tensor:
    """(size, cells) weights of ``interpolate(mode="bilinear", align_corners=False)`` along one
    axis: output i reads source position (i + ½)·cells/size − ½, floored at 0."""
    out = torch.arange(size, device=r.device, dtype=r.dtype)
    src = ((out + 0.5) * cells / size - 0.5).clamp(min=0)
    lo = src.long()
    hi = (lo + 1).clamp(max=cells - 1)
    rows = torch.arange(size, device=r.device)
    weights = torch.zeros(size, cells, device=r.device, dtype=r.dtype)
    weights.index_put_((rows, lo), 1 - (src - lo), accumulate=True)
    return weights.index_put_((rows, hi), src - lo, accumulate=True)


def _octaves(count: int, period: int, hurst: float) -> _Noise:
    """Σ_o f^−H · bilinear-up(N on a grid of H/(period·f)+1 cells), f = 2^o; unit std per image."""

    def noise(r: _Sampler, shape: _Shape) -> Tensor:
        n, c, h, w = shape
        # up(G) = By G Bxᵀ, so Σ_o a_o By_o G_o Bx_oᵀ = [a_0 By_0 … a_k By_k] · stack_o(G_o Bx_oᵀ):
        # one full-size product instead of one interpolation per octave
        rows, stacked = [], []
        for octave in range(count):
            f = 2**octave
            gh, gw = max(2, h // (period * f) + 1), max(2, w // (period * f) + 1)
            rows.append(f**-hurst * _bilinear(h, gh, r))
            stacked.append(r.normal(n, c, gh, gw) @ _bilinear(w, gw, r).T)
        return _normalise(torch.cat(rows, dim=1) @ torch.cat(stacked, dim=2), _PER_IMAGE)

    return noise


# --- piecewise constant --------------------------------------------------------------------------


def _nearest(grid: Tensor, rows: Tensor, cols: Tensor, h: int, w: int) -> Tensor:
    """Nearest upsampling of each image's leading (rows_k, cols_k) cells of ``grid`` to (h, w).

    Pixel (i, j) of image k takes cell (⌊i·rows_k/h⌋, ⌊j·cols_k/w⌋), the index rule of
    ``interpolate(mode="nearest")``; rows, cols are (n, 1, 1, 1) int64.
    """
    n, c, _, gw = grid.shape
    iy = torch.arange(h, device=grid.device)[:, None] * rows // h  # (n, 1, h, 1)
    ix = torch.arange(w, device=grid.device) * cols // w  # (n, 1, 1, w)
    return grid.gather(2, iy.expand(n, c, h, gw)).gather(3, ix.expand(n, c, h, w))


def _block(r: _Sampler, shape: _Shape) -> Tensor:
    """b ~ randint[2, 16) per image: N on an (H//b+1, W//b+1) grid, nearest-upsampled."""
    n, c, h, w = shape
    b = r.per_image_int(n, 2, 16)
    # one draw of the largest grid (b = 2) serves every image; each reads its leading cells
    return _nearest(r.normal(n, c, h // 2 + 1, w // 2 + 1), h // b + 1, w // b + 1, h, w)


def _jpeg_like(r: _Sampler, shape: _Shape) -> Tensor:
    """8×8 block means of N (smaller blocks below 8 px), nearest-upsampled, + 0.2·N."""
    h, w = shape[2:]
    means = avg_pool2d(r.normal(*shape), (min(8, h), min(8, w)))
    return interpolate(means, size=(h, w), mode="nearest") + 0.2 * r.normal(*shape)


def _structural(r: _Sampler, shape: _Shape) -> Tensor:
    """Quadrants: top-left N, top-right 2U−1, bottom-left pink/2, bottom-right ±1.

    The pink quadrant is upstream's raw filter output when faithful (DC × 1e8, so the quadrant
    saturates at ±4 per channel) and the corrected unit-std pink otherwise.
    """
    n, c, h, w = shape
    h2, w2 = h // 2, w // 2
    top = torch.cat([r.normal(n, c, h2, w2), _symmetric(r, (n, c, h2, w - w2))], dim=3)
    pink = _power_law(r, (n, c, h - h2, w2), 1.0)
    if not r.faithful:
        pink = _normalise(pink, _PER_CHANNEL)
    bottom = torch.cat([pink / 2, _signs(r, (n, c, h - h2, w - w2), 1.0)], dim=3)
    return torch.cat([top, bottom], dim=2)


# --- channel-shared patterns ---------------------------------------------------------------------


def _gradient(r: _Sampler, n: int, h: int, w: int) -> Tensor:
    y, x = r.coords(-2, 2, h, w)
    a = r.per_image(n, 0, 2 * math.pi)
    return torch.cos(a) * x + torch.sin(a) * y


def _checkerboard(r: _Sampler, n: int, h: int, w: int) -> Tensor:
    cs = r.per_image_int(n, 2, 16)
    cy = torch.arange(h, device=r.device)[:, None] // cs
    cx = torch.arange(w, device=r.device) // cs
    return ((cy + cx) % 2).to(r.dtype) * 2 - 1


def _gabor(r: _Sampler, n: int, h: int, w: int) -> Tensor:
    y, x = r.coords(-3, 3, h, w)
    angle, freq = r.per_image(n, 0, math.pi), r.per_image(n, 2, 10)
    along = x * torch.cos(angle) + y * torch.sin(angle)
    return torch.exp(-(x**2 + y**2) / 2) * torch.cos(2 * math.pi * freq * along)


def _radial(lo: float, hi: float, turns: int) -> _Pattern:
    """sin(2π f r + turns·θ) on [−1, 1]², f ~ U(lo, hi): rings (turns 0) or a spiral."""

    def pattern(r: _Sampler, n: int, h: int, w: int) -> Tensor:
        y, x = r.coords(-1, 1, h, w)
        freq = r.per_image(n, lo, hi)
        return torch.sin(2 * math.pi * freq * torch.hypot(x, y) + turns * torch.atan2(y, x))

    return pattern


_MAX_SEEDS = 49
_CHUNK = 2**24  # elements of the (images, H, W, seeds) distance block built at once


def _voronoi(r: _Sampler, n: int, h: int, w: int) -> Tensor:
    """Distance to the nearest of k ~ randint[10, 50) uniform seeds, rescaled to [−2, 2]."""
    count = r.per_image_int(n, 10, _MAX_SEEDS + 1).view(n, 1)
    sy, sx = r.uniform(n, _MAX_SEEDS) * h, r.uniform(n, _MAX_SEEDS) * w
    # seeds past an image's count repeat its first seed, which leaves the minimum unchanged
    unused = torch.arange(_MAX_SEEDS, device=r.device) >= count
    sy, sx = torch.where(unused, sy[:, :1], sy), torch.where(unused, sx[:, :1], sx)
    dy2 = (torch.arange(h, device=r.device, dtype=r.dtype)[:, None] - sy[:, None, :]) ** 2
    dx2 = (torch.arange(w, device=r.device, dtype=r.dtype)[:, None] - sx[:, None, :]) ** 2
    d2 = torch.empty(n, h, w, device=r.device, dtype=r.dtype)
    for chunk in torch.arange(n, device=r.device).split(max(1, _CHUNK // (h * w * _MAX_SEEDS))):
        d2[chunk] = (dy2[chunk, :, None] + dx2[chunk, None]).amin(dim=-1)  # (·, H, W, seeds)
    dist = d2.sqrt().unsqueeze(1)
    return dist / (dist.amax(dim=(2, 3), keepdim=True) + _EPS) * 4 - 2


# --- other composites ----------------------------------------------------------------------------


def _salt_pepper(r: _Sampler, shape: _Shape) -> Tensor:
    return _signs(r, shape, 2.0) + 0.1 * r.normal(*shape)


def _sparse(r: _Sampler, shape: _Shape) -> Tensor:
    return 3 * r.normal(*shape) * (r.uniform(*shape) > 0.9)


def _mixed(r: _Sampler, shape: _Shape) -> Tensor:
    a = r.per_image(shape[0], 0.2, 0.8)
    return a * r.normal(*shape) + (1 - a) * _symmetric(r, shape)


_SINE_RANGES = ((1, 20), (1, 20), (0, 2 * math.pi))  # fx, fy, phase


def _sine_composite(r: _Sampler, shape: _Shape) -> Tensor:
    """Five plane waves sin(2π(fx·x + fy·y) + φ) per channel on [0, 1]², fx, fy ~ U(1, 20),
    φ ~ U(0, 2π); unit std per image."""
    n, c, h, w = shape
    y, x = r.coords(0, 1, h, w)
    fx, fy, phase = (lo + (hi - lo) * r.uniform(n, c, 5, 1) for lo, hi in _SINE_RANGES)
    a, b = 2 * math.pi * fx * x, 2 * math.pi * fy * y.T + phase  # (n, c, 5, W), (n, c, 5, H)
    # Σ_k sin(a_k + b_k) = Σ_k sin b_k cos a_k + cos b_k sin a_k: a (H, 10) × (10, W) product
    rows = torch.cat([b.sin(), b.cos()], dim=2).transpose(2, 3)
    return _normalise(rows @ torch.cat([a.cos(), a.sin()], dim=2), _PER_IMAGE)


def _quantize(r: _Sampler, shape: _Shape) -> Tensor:
    levels = r.per_image_int(shape[0], 2, 8)
    return torch.round(r.normal(*shape) * levels) / levels + 0.05 * r.normal(*shape)


def _laplace(u: Tensor) -> Tensor:
    v = u - 0.5
    return -torch.sign(v) * torch.log1p(-2 * v.abs())


_TRAINING: dict[str, _Noise] = {
    "gaussian": _pointwise(lambda z: z, "normal"),
    "uniform": _pointwise(lambda u: 2 * u - 1),
    "uniform_scaled": _pointwise(lambda u: 4 * (u - 0.5)),
    "poisson": _poisson(0.5, 20.0, lambda k, lam: k / lam - 1),
    "pink": _coloured(1.0),
    "brown": _coloured(2.0),
    "salt_pepper": _salt_pepper,
    "sparse": _sparse,
    "block": _block,
    "gradient": _patterned(_gradient, 0.5),
    "checkerboard": _patterned(_checkerboard, 0.3),
    "mixed": _mixed,
    "structural": _structural,
    "cauchy": _pointwise(lambda u: torch.tan(math.pi * (u - 0.5)).clamp(-3, 3)),
    "exponential": _pointwise(lambda u: -torch.log1p(-u) - 1),
    "laplace": _pointwise(_laplace),
}

_OOD: dict[str, _Noise] = {
    "log_normal": _pointwise(lambda z: torch.exp(0.5 * z) - 1.5, "normal"),
    # Beta(½, ½) by its inverse CDF sin²(πu/2); 4·sin²(πu/2) − 2 = −2·cos(πu)
    "beta": _pointwise(lambda u: -2 * torch.cos(math.pi * u)),
    "weibull": _pointwise(lambda u: (-torch.log(u.clamp(min=_EPS))).pow(1 / 1.5) - 1),
    "gumbel": _pointwise(lambda u: -0.5 * torch.log(-torch.log(u.clamp(_EPS, 1 - _EPS)))),
    "rayleigh": _pointwise(lambda u: torch.sqrt(-2 * torch.log(u.clamp(min=_EPS))) - 1),
    "perlin": _octaves(5, period=4, hurst=1.0),
    "wavelet": _wavelet,
    "fbm": _octaves(8, period=1, hurst=0.7),
    "gabor": _patterned(_gabor, 0.2),
    "sine_composite": _sine_composite,
    "voronoi": _patterned(_voronoi, 0.1),
    "shot": _poisson(0.01, 0.2, lambda k, lam: 3 * k - 3 * lam),
    "quantize": _quantize,
    "jpeg_like": _jpeg_like,
    "rings": _patterned(_radial(3, 15, turns=0), 0.3),
    "spiral": _patterned(_radial(2, 8, turns=3), 0.2),
}

TRAINING_NOISES: tuple[str, ...] = tuple(_TRAINING)
OOD_NOISES: tuple[str, ...] = tuple(_OOD)


def _names(*ids: int) -> tuple[str, ...]:
    return tuple(TRAINING_NOISES[i] for i in ids)


CURRICULUM_TIERS: tuple[tuple[str, ...], ...] = (
    _names(0),
    _names(4, 5, 8, 9),
    _names(1, 2, 10, 11),
    _names(3, 14, 15, 7),
    _names(13, 6, 12),
)
H2_GROUPS = MappingProxyType(
    {
        "EASY": _names(1, 2, 13, 14, 15),
        "MEDIUM": _names(3, 6, 7, 11),
        "HARD": _names(4, 5, 8, 9, 10, 12),
    }
)


def _resolve(kind: str | int, registry: dict[str, _Noise]) -> int:
    names = tuple(registry)
    if isinstance(kind, int) and 0 <= kind < len(names):
        return kind
    if isinstance(kind, str) and kind in names:
        return names.index(kind)
    family = "training" if registry is _TRAINING else "OOD"
    raise ValueError(
        f"unknown {family} noise {kind!r}; expected one of {', '.join(names)} "
        f"or an id 0–{len(names) - 1}"
    )


def _sampler(
    generator: torch.Generator | None,
    device: torch.device | str | None,
    dtype: torch.dtype,
    faithful: bool,
) -> _Sampler:
    if not dtype.is_floating_point:
        raise ValueError(f"noise dtype must be floating point, got {dtype}")
    if device is None:
        device = generator.device if generator is not None else torch.device("cpu")
    device = torch.device(device)
    if generator is not None and generator.device.type != device.type:
        raise ValueError(f"generator is on {generator.device}, images requested on {device}")
    work = torch.float64 if dtype == torch.float64 else torch.float32
    return _Sampler(generator, device, work, faithful)


def _shape(n: int, size: int | tuple[int, int], channels: int) -> _Shape:
    h, w = (size, size) if isinstance(size, int) else size
    if n < 0 or channels < 1 or h < 2 or w < 2:
        raise ValueError(f"need n ≥ 0, channels ≥ 1, H, W ≥ 2; got {n=}, {channels=}, {size=}")
    return n, channels, h, w


def _batch(registry: dict[str, _Noise], labels: Tensor, shape: _Shape, r: _Sampler) -> Tensor:
    """Images (n, C, H, W) where image i has type ``labels[i]``, clamped to [−4, 4], in the
    working dtype; one generator call per type present, in id order.

    Labels on the CPU cost the device no synchronisation: the per-type counts are known on the
    host, the images are drawn type by type into one type-sorted block and put in label order by
    one gather whose index reaches the device asynchronously (from pinned memory)."""
    generators = list(registry.values())
    if labels.device.type != "cpu":
        out = torch.empty(shape, device=r.device, dtype=r.dtype)
        for t in labels.unique().tolist():  # device labels: the counts need a host read
            rows = (labels == t).nonzero().squeeze(1)
            out[rows] = generators[t](r, (len(rows), *shape[1:]))
        return out.clamp_(-CLAMP, CLAMP)
    order = labels.argsort(stable=True)
    counts = torch.bincount(labels, minlength=len(generators)).tolist()
    blocks = [generators[t](r, (c, *shape[1:])) for t, c in enumerate(counts) if c]
    empty = torch.empty(shape, device=r.device, dtype=r.dtype)
    sorted_images = torch.cat(blocks) if blocks else empty
    position = torch.empty_like(order).index_put_((order,), torch.arange(len(order)))
    return sorted_images[_to_device_async(position, r.device)].clamp_(-CLAMP, CLAMP)


def _to_device_async(t: Tensor, device: torch.device) -> Tensor:
    """A host tensor on ``device`` without waiting for the device's queue (a pageable host copy
    would synchronise the stream first; a pinned one is queued)."""
    if device.type == "cpu" or t.device.type != "cpu":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


def noise_batch(
    kind: str | int,
    n: int,
    size: int | tuple[int, int],
    channels: int = 3,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    faithful: bool = False,
) -> Tensor:
    """n images of one training noise type (spec §A.11 table), clamped to [−4, 4].

    Args:
        kind: a name of :data:`TRAINING_NOISES` or its id 0–15.
        n: number of images; per-image parameters (λ, block size, angle, …) are drawn per image.
        size: H = W, or (H, W); at least 2.
        channels: C; every type is defined per channel (patterns shared across channels).
        generator: the only randomness used (the global RNG when ``None``); on CUDA a CUDA
            generator. Same generator state → same tensor.
        device: defaults to the generator's device, else CPU.
        dtype: a floating dtype; drawn in float64 for float64, else in float32 then cast.
        faithful: keep upstream's pink/brown DC bug (module docstring).

    Returns:
        (n, C, H, W) ``dtype`` on ``device``, every value finite and in [−4, 4].

    Raises:
        ValueError: unknown kind (the message lists the valid names) or bad sizes.
    """
    t, shape = _resolve(kind, _TRAINING), _shape(n, size, channels)
    r = _sampler(generator, device, dtype, faithful)
    return _batch(_TRAINING, torch.full((n,), t, device=r.device), shape, r).to(dtype)


def ood_batch(
    kind: str | int,
    n: int,
    size: int | tuple[int, int],
    channels: int = 3,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """n images of one out-of-distribution type (:data:`OOD_NOISES`); contract of
    :func:`noise_batch`. ``beta`` is drawn by its inverse CDF rather than upstream's sampler."""
    t, shape = _resolve(kind, _OOD), _shape(n, size, channels)
    r = _sampler(generator, device, dtype, False)
    return _batch(_OOD, torch.full((n,), t, device=r.device), shape, r).to(dtype)


def mixed_batch(
    n: int,
    size: int | tuple[int, int],
    kinds: Sequence[str | int] = TRAINING_NOISES,
    channels: int = 3,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    faithful: bool = False,
    label_generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """A training batch: each image's type drawn uniformly from ``kinds``.

    Args:
        label_generator: a CPU generator for the type draws. Given, a batch on the GPU is built
            without a single host–device synchronisation (the per-type counts are known on the
            host), so it queues behind the training step instead of stalling it; the images come
            from the same generators, so the batch has the same distribution. ``None`` draws the
            types from ``generator`` on the images' device, as before.
        The rest: as :func:`noise_batch`.

    Returns:
        images (n, C, H, W) as :func:`noise_batch`, and (n,) int64 type ids on the images'
        device, ids into :data:`TRAINING_NOISES` (not positions in ``kinds``).

    Raises:
        ValueError: no kinds, an unknown kind, bad sizes, or a label generator not on the CPU.
    """
    if not kinds:
        raise ValueError("mixed_batch needs at least one noise kind")
    if label_generator is not None and label_generator.device.type != "cpu":
        raise ValueError(f"label_generator must be a CPU generator, got {label_generator.device}")
    ids, shape = [_resolve(k, _TRAINING) for k in kinds], _shape(n, size, channels)
    r = _sampler(generator, device, dtype, faithful)
    types = r.device if label_generator is None else torch.device("cpu")
    pick = torch.randint(len(ids), (n,), generator=label_generator or r.generator, device=types)
    labels = torch.tensor(ids, device=types)[pick]
    images = _batch(_TRAINING, labels, shape, r).to(dtype)
    return images, _to_device_async(labels, r.device)


# calibration name → (family, the types its images cycle through)
_CYCLES: dict[str, tuple[dict[str, _Noise], tuple[str, ...]]] = {
    "gaussian": (_TRAINING, ("gaussian",)),
    "uniform": (_TRAINING, ("uniform",)),
    "sixteen_noise": (_TRAINING, TRAINING_NOISES),
    "ood_sixteen": (_OOD, OOD_NOISES),
}
CALIBRATIONS: tuple[str, ...] = tuple(_CYCLES)


def calibration_set(
    name: str,
    n: int,
    size: int = 64,
    channels: int = 3,
    *,
    seed: int = 0,
    device: torch.device | str | None = None,
    faithful: bool = False,
) -> tuple[Tensor, Tensor]:
    """Exactly n calibration images and their type labels.

    ``gaussian`` (N clamped to ±4), ``uniform`` (2U−1), ``sixteen_noise`` (image i has training
    type i mod 16) and ``ood_sixteen`` (image i has OOD type i mod 16). Upstream returned
    16·⌈n/16⌉ images in type-major order when 16 ∤ n (H.25); here n is always n.
    Deterministic under ``seed`` on a given device type; the definitions match upstream, the
    RNG streams (per-sample seeds seed·1000 + type·100 + i upstream) do not.

    Returns:
        images (n, C, size, size) float32 on ``device``; labels (n,) int64, ids into
        :data:`TRAINING_NOISES` (into :data:`OOD_NOISES` for ``ood_sixteen``).
    """
    if name not in _CYCLES:
        raise ValueError(f"unknown calibration {name!r}; expected one of {', '.join(CALIBRATIONS)}")
    registry, cycle = _CYCLES[name]
    shape = _shape(n, size, channels)
    generator = torch.Generator(device=device if device is not None else "cpu").manual_seed(seed)
    r = _sampler(generator, device, torch.float32, faithful)
    ids = torch.tensor([_resolve(k, registry) for k in cycle], device=r.device)
    labels = ids[torch.arange(n, device=r.device) % len(cycle)]
    return _batch(registry, labels, shape, r), labels
