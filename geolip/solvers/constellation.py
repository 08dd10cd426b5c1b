"""A constellation: A anchors spread over S^(d−1), and how many of them a cloud of rows uses.

Anchors are initialised as upstream's ``repulsion`` constellation (spec §C.5): the first
min(A, d) rows orthonormal (QR of a Gaussian), the rest Gaussian, all unit; then 200 steps of
"move away from the nearest other anchor", v ← normalise(v − 0.05 · v_nn). Each row is
assigned to its nearest anchor by cosine (``argmax cos``, signed: anchors are points of the
sphere, not axes). Utilisation is reported beside the same statistic for as many i.i.d.
uniform rows, the null of a cloud with no preferred direction. Pure tensor math.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

REPULSION_STEPS = 200
REPULSION_RATE = 0.05


def repulsion_anchors(n_anchors: int, dim: int, seed: int = 0) -> torch.Tensor:
    """(A, d) float64 unit anchors, spread by repulsion (module docstring)."""
    if n_anchors < 1 or dim < 1:
        raise ValueError(f"need n_anchors >= 1 and dim >= 1, got {n_anchors} and {dim}")
    gen = torch.Generator().manual_seed(seed)
    v = torch.randn(n_anchors, dim, generator=gen, dtype=torch.float64)
    m = min(n_anchors, dim)
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=gen, dtype=torch.float64))
    v[:m] = q[:m]
    v = v / v.norm(dim=1, keepdim=True)
    if n_anchors == 1:
        return v
    for _ in range(REPULSION_STEPS):
        cos = v @ v.T
        cos.fill_diagonal_(-math.inf)
        nearest = v[cos.argmax(dim=1)]
        v = v - REPULSION_RATE * nearest
        v = v / v.norm(dim=1, keepdim=True)
    return v


@dataclass(frozen=True)
class Utilisation:
    """How a cloud of N rows spreads over A anchors.

    Attributes:
        active: anchors that are the nearest anchor of at least one row.
        n_anchors: A.
        entropy: Shannon entropy (nats) of the nearest-anchor histogram.
        perplexity: exp(entropy), the effective number of anchors used, in [1, A].
        max_share: the largest fraction of rows on one anchor.
        null_active, null_perplexity: the same for N i.i.d. uniform rows on the sphere (mean
            over ``null_trials`` draws); ``None`` without trials.
    """

    active: int
    n_anchors: int
    entropy: float
    perplexity: float
    max_share: float
    null_active: float | None = None
    null_perplexity: float | None = None

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "active": self.active,
            "n_anchors": self.n_anchors,
            "entropy": self.entropy,
            "perplexity": self.perplexity,
            "max_share": self.max_share,
            "null_active": self.null_active,
            "null_perplexity": self.null_perplexity,
        }


def nearest_anchor(rows: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """(N,) int64 index of each row's nearest anchor by cosine."""
    if rows.ndim != 2 or anchors.ndim != 2 or rows.shape[1] != anchors.shape[1]:
        raise ValueError(
            f"rows (N, d) and anchors (A, d) must share d, got {tuple(rows.shape)} "
            f"and {tuple(anchors.shape)}"
        )
    x = rows.detach().to(torch.float64)
    x = x / x.norm(dim=1, keepdim=True).clamp(min=1e-300)
    return (x @ anchors.to(torch.float64).T).argmax(dim=1)


def anchor_utilisation(
    rows: torch.Tensor, anchors: torch.Tensor, *, null_trials: int = 20, seed: int = 0
) -> Utilisation:
    """Utilisation of ``anchors`` (A, d) by ``rows`` (N, d), with the uniform-rows null."""
    counts = torch.bincount(nearest_anchor(rows, anchors), minlength=anchors.shape[0])
    active, entropy, max_share = _histogram_stats(counts)
    null_active = null_perplexity = None
    if null_trials > 0:
        gen = torch.Generator().manual_seed(seed)
        stats = []
        for _ in range(null_trials):
            uniform = torch.randn(
                rows.shape[0], anchors.shape[1], generator=gen, dtype=torch.float64
            )
            c = torch.bincount(nearest_anchor(uniform, anchors), minlength=anchors.shape[0])
            a, e, _ = _histogram_stats(c)
            stats.append((a, math.exp(e)))
        null_active = sum(a for a, _ in stats) / null_trials
        null_perplexity = sum(p for _, p in stats) / null_trials
    return Utilisation(
        active=active,
        n_anchors=int(anchors.shape[0]),
        entropy=entropy,
        perplexity=math.exp(entropy),
        max_share=max_share,
        null_active=null_active,
        null_perplexity=null_perplexity,
    )


def _histogram_stats(counts: torch.Tensor) -> tuple[int, float, float]:
    p = counts.double() / counts.sum()
    nz = p[p > 0]
    return int((counts > 0).sum()), float(-(nz * nz.log()).sum()), float(p.max())
