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


def plot_angle_histogram(
    cb: Codebook, path: str | Path, null_trials: int = 100, seed: int = 0
) -> Path:
    """Write a PNG: histogram of the codebook's pairwise projective angles, the exact uniform
    density, the 5-95 % band of the same histogram over ``null_trials`` i.i.d. codebooks of the
    same K and D, and the observed mean angle beside the uniform baseline. Atomic write."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    edges = torch.linspace(0, math.pi / 2, _BINS + 1, dtype=torch.float64)
    width = edges[1] - edges[0]
    centres = (edges[:-1] + edges[1:]) / 2

    def density(angles: torch.Tensor) -> torch.Tensor:
        return torch.histc(angles, _BINS, 0, math.pi / 2) / (angles.numel() * width)

    observed = _pair_angles(cb.axes)
    gen = torch.Generator().manual_seed(seed)
    null = torch.stack(
        [
            density(_pair_angles(torch.randn(cb.size, cb.dim, generator=gen, dtype=torch.float64)))
            for _ in range(null_trials)
        ]
    )
    lo, hi = torch.quantile(null, 0.05, dim=0).numpy(), torch.quantile(null, 0.95, dim=0).numpy()
    x, bar_width = centres.numpy(), float(width)

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    ax.bar(
        x,
        density(observed).numpy(),
        width=bar_width,
        color="#4C72B0",
        alpha=0.75,
        label=f"codebook ({cb.size} axes, {observed.numel()} pairs)",
    )
    ax.fill_between(
        x,
        lo,
        hi,
        step="mid",
        color="#DD8452",
        alpha=0.35,
        label=f"i.i.d. null, 5-95 % ({null_trials} codebooks)",
    )
    fine = torch.linspace(0, math.pi / 2, 400, dtype=torch.float64)
    ax.plot(
        fine.numpy(),
        uniform_angle_density(fine, cb.dim).numpy(),
        color="black",
        lw=1.5,
        label=f"uniform RP^{cb.dim - 1} (exact)",
    )
    base = uniform_rp_baseline(cb.dim)
    ax.axvline(base, color="black", ls="--", lw=1, label=f"uniform mean {base:.4f}")
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
