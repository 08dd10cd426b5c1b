"""Pictures of a codebook: its projective angles against the exact uniform law and the null."""

from __future__ import annotations

import math
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from geolip.solvers.projective import projective_angle, uniform_rp_baseline

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from geolip.codebook.core import Codebook

_BINS = 30


def _pair_angles(axes: torch.Tensor) -> torch.Tensor:
    """(K, D) → (K(K-1)/2,) projective angles over i < j, radians."""
    ang = projective_angle(axes.double())
    i, j = torch.triu_indices(axes.shape[0], axes.shape[0], offset=1)
    return ang[i, j]


def uniform_angle_density(theta: torch.Tensor, dim: int) -> torch.Tensor:
    """Density of the projective angle of two uniform axes of R^dim on [0, π/2]: ∝ sin^(D-2)θ."""
    grid = torch.linspace(0, math.pi / 2, 4001, dtype=torch.float64)
    norm = torch.trapezoid(torch.sin(grid) ** (dim - 2), grid)
    return torch.sin(theta) ** (dim - 2) / norm


def _bin_edges() -> torch.Tensor:
    """(_BINS + 1,) float64 edges of equal-width bins over [0, π/2]."""
    return torch.linspace(0, math.pi / 2, _BINS + 1, dtype=torch.float64)


def _density(angles: torch.Tensor) -> torch.Tensor:
    """(_BINS,) histogram of ``angles`` over [0, π/2], scaled to unit area."""
    edges = _bin_edges()
    return torch.histc(angles, _BINS, 0, math.pi / 2) / (angles.numel() * (edges[1] - edges[0]))


def _null_band(
    size: int, dim: int, null_trials: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(_BINS,) 5 % and 95 % quantiles, bin by bin, of the angle density of ``null_trials``
    i.i.d. Gaussian codebooks of ``size`` axes in R^dim drawn from ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    null = torch.stack(
        [
            _density(_pair_angles(torch.randn(size, dim, generator=gen, dtype=torch.float64)))
            for _ in range(null_trials)
        ]
    )
    return torch.quantile(null, 0.05, dim=0), torch.quantile(null, 0.95, dim=0)


def _draw_codebook_and_null(
    ax: Axes,
    cb: Codebook,
    observed: torch.Tensor,
    band: tuple[torch.Tensor, torch.Tensor],
    null_trials: int,
) -> None:
    """Bars of the observed angle density over the shaded null band."""
    edges = _bin_edges()
    x, bar_width = ((edges[:-1] + edges[1:]) / 2).numpy(), float(edges[1] - edges[0])
    ax.bar(
        x,
        _density(observed).numpy(),
        width=bar_width,
        color="#4C72B0",
        alpha=0.75,
        label=f"codebook ({cb.size} axes, {observed.numel()} pairs)",
    )
    ax.fill_between(
        x,
        band[0].numpy(),
        band[1].numpy(),
        step="mid",
        color="#DD8452",
        alpha=0.35,
        label=f"i.i.d. null, 5-95 % ({null_trials} codebooks)",
    )


def _draw_uniform_law(ax: Axes, dim: int) -> None:
    """The exact uniform density and, dashed, its mean angle."""
    fine = torch.linspace(0, math.pi / 2, 400, dtype=torch.float64)
    ax.plot(
        fine.numpy(),
        uniform_angle_density(fine, dim).numpy(),
        color="black",
        lw=1.5,
        label=f"uniform RP^{dim - 1} (exact)",
    )
    base = uniform_rp_baseline(dim)
    ax.axvline(base, color="black", ls="--", lw=1, label=f"uniform mean {base:.4f}")


def _save_atomic(fig: Figure, path: str | Path) -> Path:
    """Save ``fig`` as PNG through a temporary file renamed onto ``path``, then close it."""
    import matplotlib.pyplot as plt

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}.png")
    try:
        fig.savefig(tmp)
        os.replace(tmp, target)
    finally:
        plt.close(fig)
        if tmp.exists():
            tmp.unlink()
    return target


def plot_angle_histogram(
    cb: Codebook, path: str | Path, null_trials: int = 100, seed: int = 0
) -> Path:
    """Write a PNG: histogram of the codebook's pairwise projective angles, the exact uniform
    density, the 5-95 % band of the same histogram over ``null_trials`` i.i.d. codebooks of the
    same K and D, and the observed mean angle beside the uniform baseline. Atomic write."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    observed = _pair_angles(cb.axes)
    band = _null_band(cb.size, cb.dim, null_trials, seed)
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    _draw_codebook_and_null(ax, cb, observed, band, null_trials)
    _draw_uniform_law(ax, cb.dim)
    ax.axvline(
        observed.mean().item(),
        color="#C44E52",
        lw=1.5,
        label=f"codebook mean {observed.mean().item():.4f}",
    )
    ax.set_xlabel("projective angle acos|cos| (rad)")
    ax.set_ylabel("density")
    ax.set_xlim(0, math.pi / 2)
    ax.set_title(f"{cb.name} — {cb.id[:12]}")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return _save_atomic(fig, path)
