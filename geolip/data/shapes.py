"""Procedural shapes: one scene description, rendered anti-aliased at any resolution.

A scene is a shape kind (the class), a foreground and a background colour from a named
palette, a centre, a radius and a rotation, all in resolution-free units: the scene lives on
the unit square, which maps onto the centred min(H, W) square of the image. Each pixel is
shaded by the exact signed distance d from its centre to the shape's outline, with coverage
clamp(½ − d / pixel, 0, 1) — a one-pixel box filter across the edge — so a scene rendered at
512 × 512 and averaged down 8 × 8 agrees with its 64 × 64 rendering up to that filter.
Scenes are drawn from the seed alone, never from the size: ``load_shapes(n, 64, seed=s)`` and
``load_shapes(n, 512, seed=s)`` show the same scenes. Distance functions after I. Quilez.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from geolip.data.dataset import ImageDataset, fingerprint_of
from geolip.errors import DatasetError

RENDER_VERSION = 1
"""Bumped whenever a scene's pixels could change (feature caches key on it)."""

SHAPE_KINDS: tuple[str, ...] = ("circle", "square", "triangle", "ring", "cross", "star")
FOREGROUNDS: dict[str, tuple[float, float, float]] = {
    "red": (0.90, 0.10, 0.10),
    "green": (0.10, 0.80, 0.20),
    "blue": (0.15, 0.30, 0.95),
    "yellow": (0.95, 0.90, 0.10),
    "magenta": (0.90, 0.15, 0.85),
    "cyan": (0.10, 0.85, 0.90),
    "orange": (1.00, 0.55, 0.05),
    "white": (0.97, 0.97, 0.97),
}
BACKGROUNDS: dict[str, tuple[float, float, float]] = {
    "black": (0.03, 0.03, 0.03),
    "grey": (0.45, 0.45, 0.45),
    "navy": (0.05, 0.07, 0.35),
    "brown": (0.40, 0.25, 0.10),
    "dark green": (0.05, 0.30, 0.10),
}
RADIUS_RANGE = (0.12, 0.30)
"""Shape radius as a fraction of the scene side; the shape always lies inside the scene."""

_MARGIN = 0.02


@dataclass(frozen=True)
class ShapeScenes:
    """N scene descriptions; every field is a tensor with N rows, float64 where continuous.

    Attributes:
        kind: (N,) int64 index into ``kinds`` (the class label).
        foreground, background: (N,) int64 indices into :data:`FOREGROUNDS` /
            :data:`BACKGROUNDS`.
        centre: (N, 2) (x, y) in scene units, x to the right, y downwards.
        radius: (N,) in scene units.
        angle: (N,) rotation in radians.
        kinds: the class names.
    """

    kind: torch.Tensor
    foreground: torch.Tensor
    background: torch.Tensor
    centre: torch.Tensor
    radius: torch.Tensor
    angle: torch.Tensor
    kinds: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.kind.shape[0])

    def captions(self) -> tuple[str, ...]:
        """One sentence per scene: size, colour, kind, place and background."""
        fg, bg = list(FOREGROUNDS), list(BACKGROUNDS)
        lo, hi = RADIUS_RANGE
        out = []
        for i in range(len(self)):
            third = min(int(3 * (self.radius[i].item() - lo) / (hi - lo)), 2)
            size = ("small", "medium", "large")[third]
            x, y = self.centre[i].tolist()
            out.append(
                f"a {size} {fg[int(self.foreground[i])]} {self.kinds[int(self.kind[i])]} "
                f"{_place(x, y)} on a {bg[int(self.background[i])]} background"
            )
        return tuple(out)


def _place(x: float, y: float) -> str:
    column = ("left", "", "right")[min(int(3 * x), 2)]
    row = ("top", "", "bottom")[min(int(3 * y), 2)]
    words = " ".join(w for w in (row, column) if w)
    return f"at the {words}" if words else "in the centre"


def draw_scenes(n: int, seed: int = 0, kinds: Sequence[str] = SHAPE_KINDS) -> ShapeScenes:
    """N random scenes from ``seed`` (float64 draws; the size of any later rendering plays no
    part). Kinds cycle i mod len(kinds) before a seeded shuffle, so classes are balanced."""
    unknown = [k for k in kinds if k not in _SDF]
    if unknown or not kinds:
        raise DatasetError(f"shape kinds must be a non-empty subset of {SHAPE_KINDS}, got {kinds}")
    if n < 0:
        raise DatasetError(f"the number of scenes must be >= 0, got {n}")
    g = torch.Generator().manual_seed(seed)
    kind = torch.arange(n) % len(kinds)
    kind = kind[torch.randperm(n, generator=g)]
    lo, hi = RADIUS_RANGE
    radius = lo + (hi - lo) * torch.rand(n, generator=g, dtype=torch.float64)
    free = 1 - 2 * (radius + _MARGIN)  # room left for the centre on each axis
    centre = (radius + _MARGIN).unsqueeze(1) + free.unsqueeze(1) * torch.rand(
        n, 2, generator=g, dtype=torch.float64
    )
    return ShapeScenes(
        kind=kind,
        foreground=torch.randint(len(FOREGROUNDS), (n,), generator=g),
        background=torch.randint(len(BACKGROUNDS), (n,), generator=g),
        centre=centre,
        radius=radius,
        angle=2 * math.pi * torch.rand(n, generator=g, dtype=torch.float64),
        kinds=tuple(kinds),
    )


# signed distances of unit shapes: (x, y) local coordinates → distance (negative inside) ------


def _box(x: torch.Tensor, y: torch.Tensor, bx: float, by: float) -> torch.Tensor:
    dx, dy = x.abs() - bx, y.abs() - by
    outside = torch.hypot(dx.clamp(min=0), dy.clamp(min=0))
    return outside + torch.maximum(dx, dy).clamp(max=0)


def _circle(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.hypot(x, y) - 1


def _square(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return _box(x, y, 0.8, 0.8)


def _ring(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (torch.hypot(x, y) - 0.72).abs() - 0.28


def _cross(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.minimum(_box(x, y, 1.0, 0.3), _box(x, y, 0.3, 1.0))


def _triangle(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Equilateral triangle with vertices (±h, −h/√3) and (0, 2h/√3), h = 0.85."""
    h, k = 0.85, math.sqrt(3.0)
    x, y = x.abs() - h, y + h / k
    fold = x + k * y > 0
    x, y = torch.where(fold, (x - k * y) / 2, x), torch.where(fold, (-k * x - y) / 2, y)
    x = x - x.clamp(-2 * h, 0)
    return -torch.hypot(x, y) * torch.sign(y)


def _star(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Five-pointed star, outer radius 1, inner-to-outer ratio 0.45."""
    k1x, k1y = 0.809016994375, -0.587785252292
    x = x.abs()
    for kx, ky in ((k1x, k1y), (-k1x, k1y)):
        dot = (kx * x + ky * y).clamp(min=0)
        x, y = x - 2 * dot * kx, y - 2 * dot * ky
    x, y = x.abs(), y - 1.0
    bax, bay = 0.45 * -k1y, 0.45 * k1x - 1.0
    t = ((x * bax + y * bay) / (bax * bax + bay * bay)).clamp(0, 1)
    return torch.hypot(x - bax * t, y - bay * t) * torch.sign(y * bax - x * bay)


_SDF: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "circle": _circle,
    "square": _square,
    "triangle": _triangle,
    "ring": _ring,
    "cross": _cross,
    "star": _star,
}


def render_scenes(scenes: ShapeScenes, size: int | tuple[int, int]) -> torch.Tensor:
    """Render every scene at ``size`` = H = W or (H, W): → (N, 3, H, W) float32 in [0, 1].

    Geometry is computed in float64; memory is a few (N, H, W) float64 planes.
    """
    h, w = (size, size) if isinstance(size, int) else size
    if h < 1 or w < 1:
        raise DatasetError(f"cannot render shapes at {h}×{w}")
    n, side = len(scenes), min(h, w)
    ys = ((torch.arange(h, dtype=torch.float64) + 0.5 - h / 2) / side + 0.5).view(1, h, 1)
    xs = ((torch.arange(w, dtype=torch.float64) + 0.5 - w / 2) / side + 0.5).view(1, 1, w)
    r = scenes.radius.view(n, 1, 1)
    cos, sin = scenes.angle.cos().view(n, 1, 1), scenes.angle.sin().view(n, 1, 1)
    dx, dy = xs - scenes.centre[:, 0].view(n, 1, 1), ys - scenes.centre[:, 1].view(n, 1, 1)
    lx, ly = (cos * dx + sin * dy) / r, (-sin * dx + cos * dy) / r  # rotate by −angle, unit size
    distance = torch.empty(n, h, w, dtype=torch.float64)
    for k, name in enumerate(scenes.kinds):
        rows = (scenes.kind == k).nonzero().flatten()
        if rows.numel():
            distance[rows] = _SDF[name](lx[rows], ly[rows]) * r[rows]
    coverage = (0.5 - distance * side).clamp(0, 1).unsqueeze(1)  # (N, 1, H, W)
    fg = torch.tensor(list(FOREGROUNDS.values()), dtype=torch.float64)[scenes.foreground]
    bg = torch.tensor(list(BACKGROUNDS.values()), dtype=torch.float64)[scenes.background]
    fg, bg = fg.view(n, 3, 1, 1), bg.view(n, 3, 1, 1)
    return (bg + coverage * (fg - bg)).float()


def select(scenes: ShapeScenes, indices: torch.Tensor) -> ShapeScenes:
    """The scenes at ``indices`` (int64 tensor), in that order."""
    return ShapeScenes(
        kind=scenes.kind[indices],
        foreground=scenes.foreground[indices],
        background=scenes.background[indices],
        centre=scenes.centre[indices],
        radius=scenes.radius[indices],
        angle=scenes.angle[indices],
        kinds=scenes.kinds,
    )


def load_shapes(
    n: int = 600,
    size: int | tuple[int, int] = 64,
    *,
    seed: int = 0,
    kinds: Sequence[str] = SHAPE_KINDS,
) -> ImageDataset:
    """N procedural shape images at ``size``, rendered batch by batch when asked for.

    Returns:
        An :class:`ImageDataset` of (N, 3, H, W) images in [0, 1]; the class is the shape kind
        (balanced), captions describe each scene. The same (n, seed, kinds) at another size
        gives the same scenes.
    """
    if n < 1:
        raise DatasetError(f"load_shapes needs n >= 1, got {n}")
    h, w = (size, size) if isinstance(size, int) else size
    scenes = draw_scenes(n, seed, kinds)
    return ImageDataset(
        name="shapes",
        labels=scenes.kind.clone(),
        classes=scenes.kinds,
        size=(h, w),
        channels=3,
        fingerprint=fingerprint_of("shapes", RENDER_VERSION, n, seed, scenes.kinds, h, w),
        render=lambda idx: render_scenes(select(scenes, idx), (h, w)),
        captions=scenes.captions(),
    )
