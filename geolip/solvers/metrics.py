"""Simplex volumes, the pentachoron CV and effective rank (spec §C.1, §C.2, H.5-H.7).

Everything here is pure tensor math.
"""

from __future__ import annotations

import math
import warnings
from functools import cache

import torch

PENTACHORON_POOL = 512
"""Only the first this-many rows are sampled by :func:`pentachoron_cv` (upstream ``cv_of``)."""

ERANK_FLOOR = 1e-8
"""Lower clamp of the normalised singular values in :func:`effective_rank` (upstream)."""


def _squared_distances(points: torch.Tensor) -> torch.Tensor:
    """Pairwise squared distances of (..., m, n) points → (..., m, m) float64.

    Taken from coordinate differences rather than the Gram expansion
    ‖p_i‖² + ‖p_j‖² − 2⟨p_i, p_j⟩ used upstream: equal in exact arithmetic, but the expansion
    cancels catastrophically for points far from the origin and needs a clamp at zero.
    """
    p = points.double()
    return (p.unsqueeze(-2) - p.unsqueeze(-3)).square().sum(-1)


def _cm_volume_sq(d2: torch.Tensor) -> torch.Tensor:
    """Squared k-volume from (..., k+1, k+1) squared distances via the bordered CM determinant."""
    m = d2.shape[-1]
    k = m - 1
    cm = d2.new_ones(*d2.shape[:-2], m + 1, m + 1)
    cm[..., 0, 0] = 0.0
    cm[..., 1:, 1:] = d2
    scale = (-1) ** (k + 1) / (2**k * math.factorial(k) ** 2)
    return scale * torch.linalg.det(cm)


def cayley_menger_volume_sq(points: torch.Tensor) -> torch.Tensor:
    """Squared k-volume of the simplex spanned by k+1 points, via Cayley–Menger.

    vol² = (−1)^(k+1) det(CM) / (2^k (k!)²) with CM = [[0, 1ᵀ], [1, d²]] the bordered matrix of
    squared distances (spec §C.1).

    Args:
        points: (..., k+1, n) with k ≥ 1; any float dtype.

    Returns:
        (...) float64. Invariant under rotations, translations and permutations of the points,
        and scales as s^(2k) when the points are scaled by s. Degenerate simplices (also every
        simplex with k > n) give round-off around zero, possibly slightly negative.
    """
    if points.ndim < 2 or points.shape[-2] < 2:
        raise ValueError(f"need (..., k+1, n) points with k >= 1, got shape {tuple(points.shape)}")
    return _cm_volume_sq(_squared_distances(points))


def _warn_nan(reason: str) -> float:
    warnings.warn(
        f"pentachoron CV is undefined: {reason}; returning NaN", RuntimeWarning, stacklevel=3
    )
    return math.nan


def pentachoron_cv(
    rows: torch.Tensor,
    n_samples: int = 200,
    generator: torch.Generator | None = None,
    rel_tol: float = 1e-12,
    min_valid: int = 10,
) -> float:
    """Coefficient of variation of the 4-volumes of random 5-point subsets of the rows.

    The first min(V, 512) rows form the pool; each of ``n_samples`` draws takes 5 distinct rows
    of it, and CV = std(vol) / mean(vol) (unbiased std) over the non-degenerate draws. A draw is
    degenerate when vol² ≤ ``rel_tol`` · (largest squared edge)^4, a tolerance relative to the
    simplex's own scale (spec H.7) in place of upstream's absolute 1e-20, so the CV is
    scale-invariant. Rows are used as given; callers normalise them if they want directions.

    Args:
        rows: (V, D) with V ≥ 5, finite.
        n_samples: number of 5-point draws.
        generator: source of the draws; ``None`` uses torch's global generator.
        rel_tol: relative degeneracy tolerance on vol².
        min_valid: fewest non-degenerate draws for a defined CV.

    Returns:
        The CV as a float, or NaN with a :class:`RuntimeWarning` when D < 4 (five points in
        R^D, D < 4, have no 4-volume; spec §C.1) or fewer than ``min_valid`` draws are valid.
    """
    if rows.ndim != 2:
        raise ValueError(f"rows must be (V, D), got shape {tuple(rows.shape)}")
    n_rows, dim = rows.shape
    if n_rows < 5:
        raise ValueError(f"pentachoron CV needs at least 5 rows, got {n_rows}")
    if not torch.isfinite(rows).all():
        raise ValueError("rows contain NaN or Inf")
    if dim < 4:
        return _warn_nan(f"5 points in R^{dim} span no 4-volume (need D >= 4)")
    pool = rows[:PENTACHORON_POOL].double()
    device = rows.device if generator is None else generator.device
    noise = torch.rand(n_samples, pool.shape[0], generator=generator, device=device)
    idx = noise.argsort(dim=-1)[:, :5].to(pool.device)  # 5 distinct rows per draw
    d2 = _squared_distances(pool[idx])  # (S, 5, 5)
    vol_sq = _cm_volume_sq(d2)
    max_edge_sq = d2.flatten(-2).amax(-1)
    valid = vol_sq > rel_tol * max_edge_sq**4
    n_valid = int(valid.sum())
    if n_valid < min_valid:
        return _warn_nan(
            f"only {n_valid} of {n_samples} draws are non-degenerate (need {min_valid})"
        )
    vol = vol_sq[valid].sqrt()
    return (vol.std() / vol.mean()).item()


def pentachoron_cv_batch(
    rows: torch.Tensor,
    n_samples: int = 32,
    generator: torch.Generator | None = None,
    eps: float = 1e-12,
) -> torch.Tensor:
    """Differentiable pentachoron CV of every (V, D) matrix of a batch (a training loss term).

    The same ``n_samples`` random 5-row subsets (5 distinct rows each) are taken of every
    matrix; CV = std(vol) / (mean(vol) + 1e-8) over them (unbiased std), vol = sqrt(max(vol², 0)
    + eps) so that degenerate draws keep a finite gradient. Unlike :func:`pentachoron_cv`,
    no draw is dropped: the loss sees every simplex, flat ones included.

    Args:
        rows: (..., V, D) with V ≥ 5 and D ≥ 4, any float dtype.
        n_samples: 5-point draws per matrix (≥ 2).
        generator: source of the draws; ``None`` uses torch's global generator.

    Returns:
        (...) CVs in ``rows``' dtype, differentiable with respect to ``rows``; the volumes are
        computed in float64. Invariant to rotating or scaling a matrix's rows together.
    """
    if rows.ndim < 2 or rows.shape[-2] < 5 or rows.shape[-1] < 4:
        raise ValueError(f"need (..., V ≥ 5, D ≥ 4) rows, got shape {tuple(rows.shape)}")
    if n_samples < 2:
        raise ValueError(f"n_samples must be >= 2, got {n_samples}")
    device = rows.device if generator is None else generator.device
    noise = torch.rand(n_samples, rows.shape[-2], generator=generator, device=device)
    idx = noise.argsort(dim=-1)[:, :5].to(rows.device)  # (S, 5) distinct rows per draw
    vol_sq = _cm_volume_sq(_squared_distances(rows[..., idx, :]))  # (..., S)
    vol = (vol_sq.clamp(min=0) + eps).sqrt()
    return (vol.std(dim=-1) / (vol.mean(dim=-1) + 1e-8)).to(rows.dtype)


def effective_rank(singular_values: torch.Tensor) -> torch.Tensor:
    """Effective rank exp(−Σ p log p) with p = σ / Σσ clamped ≥ 1e-8 (spec §C.2, H.31).

    Uses σ, not σ², as upstream does, for comparability.

    Args:
        singular_values: (..., D) non-negative, not all zero.

    Returns:
        (...) same dtype, in [1, D] up to the clamp (≤ D·2e-7 above): D for a flat spectrum,
        1 for a single non-zero value; invariant to scaling σ and to its order.
    """
    if (singular_values < 0).any():
        raise ValueError("singular values must be non-negative")
    p = singular_values / singular_values.sum(-1, keepdim=True)
    p = p.clamp(min=ERANK_FLOOR)
    return torch.exp(-(p * p.log()).sum(-1))


def cv_uniform(
    n_rows: int, dim: int, n_trials: int = 20, n_samples: int = 200, seed: int = 0
) -> float:
    """Mean pentachoron CV of ``n_rows`` i.i.d. uniform unit rows in R^dim over ``n_trials``.

    The natural CV of a codebook with no structure, to compare an observed CV against
    (spec H.5, H.26). Deterministic under ``seed``; cached per argument tuple.
    Reference (V = 256, 50 trials): D=4 0.917, D=8 0.364, D=16 0.200, D=32 0.129.

    Returns:
        The mean CV, or NaN with a :class:`RuntimeWarning` for dim < 4.
    """
    if n_rows < 5:
        raise ValueError(f"pentachoron CV needs at least 5 rows, got {n_rows}")
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    if dim < 4:
        return _warn_nan(f"5 points in R^{dim} span no 4-volume (need D >= 4)")
    return _cv_uniform(n_rows, dim, n_trials, n_samples, seed)


@cache
def _cv_uniform(n_rows: int, dim: int, n_trials: int, n_samples: int, seed: int) -> float:
    gen = torch.Generator().manual_seed(seed)
    cvs = []
    for _ in range(n_trials):
        rows = torch.randn(n_rows, dim, generator=gen, dtype=torch.float64)
        rows = torch.nn.functional.normalize(rows, dim=-1)
        cvs.append(pentachoron_cv(rows, n_samples=n_samples, generator=gen))
    return sum(cvs) / n_trials
