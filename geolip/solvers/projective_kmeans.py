"""Projective k-means: k axes of RP^(D−1) that summarise a cloud of rows, and its i.i.d. null.

A row x and −x are one point. The dissimilarity of a row to an axis c is sin²θ = 1 − (x·c)²,
θ the projective angle, so rows are assigned by largest |cos| and the best axis of a cluster
is the unit c maximising Σ (x·c)² over its rows: the top eigenvector of the scatter Σ x xᵀ.
Each Lloyd step therefore never increases the objective mean sin²θ, and nothing depends on the
sign of any row (x xᵀ and (x·c)² do not change under x ↦ −x): flipping rows gives the same
clustering, bit for bit.

Seeding is k-means++ with sin²θ as the squared distance; several seeded restarts, the lowest
objective wins. Pure tensor math, float64 on the CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from geolip.solvers.projective import canonical_sign

CHUNK_ELEMENTS = 1 << 23
"""Rows are processed in chunks of about this many float64 entries (64 MiB) of the (rows, k)
cosine block or the (rows, D, D) outer products, whichever is larger."""

RESTART_MARGIN = 1e-12
"""A later restart replaces the best one only if its objective is lower by more than this."""


@dataclass(frozen=True)
class ProjectiveKMeans:
    """Result of :func:`projective_kmeans` on N rows.

    Attributes:
        centroids: (k, D) float64 unit axes, canonical sign, sorted by usage (most used
            first; ties keep their seeding order).
        assignment: (N,) int64 index of each row's axis (largest |cos|, lowest index on ties).
        usage: (k,) int64 rows per axis; sums to N.
        objective: mean over the N rows of sin²θ = 1 − cos² to its axis, in [0, 1].
        mean_abs_cos: (k,) float64 mean |cos| of each axis's rows (0 for an unused axis).
        iterations: Lloyd steps of the winning restart.
        restart: index of the winning restart.
        fitted_rows: rows the centroids were fitted on (N, or the sample of ``max_rows``).
    """

    centroids: torch.Tensor
    assignment: torch.Tensor
    usage: torch.Tensor
    objective: float
    mean_abs_cos: torch.Tensor
    iterations: int
    restart: int
    fitted_rows: int

    @property
    def k(self) -> int:
        return int(self.centroids.shape[0])

    @property
    def perplexity(self) -> float:
        """exp(entropy) of the usage shares, in [1, k]: k when every axis is used equally."""
        return usage_perplexity(self.usage)


def usage_perplexity(usage: torch.Tensor) -> float:
    """exp(−Σ p log p) of counts (k,) normalised to shares p; unused entries contribute 0."""
    p = usage.double() / usage.sum()
    p = p[p > 0]
    return math.exp(-float((p * p.log()).sum()))


def _unit_rows(rows: torch.Tensor) -> torch.Tensor:
    if rows.ndim != 2 or rows.shape[1] < 2:
        raise ValueError(f"rows must be (N, D ≥ 2), got shape {tuple(rows.shape)}")
    if not torch.isfinite(rows).all():
        raise ValueError("rows contain NaN or Inf")
    x = rows.detach().cpu().double()
    norms = x.norm(dim=1, keepdim=True)
    if (norms == 0).any():
        raise ValueError("rows contain a zero vector, which has no direction")
    return x / norms


def _chunk(n_cols: int) -> int:
    return max(1024, CHUNK_ELEMENTS // max(n_cols, 1))


def assign_rows(rows: torch.Tensor, axes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest axis of every row by |cos| (lowest index on ties).

    Args:
        rows: (N, D) unit rows, float64. axes: (k, D) unit axes, float64.

    Returns:
        (assignment (N,) int64, cos² to that axis (N,) float64). The search runs in float32
        (its ties are broken by float32 rounding), cos² of the chosen axis in float64.
        Invariant to the sign of any row or axis: −x rounds to exactly −(x rounded).
    """
    out_idx = torch.empty(rows.shape[0], dtype=torch.int64)
    out_cos2 = torch.empty(rows.shape[0], dtype=torch.float64)
    axes32 = axes.float()
    step = _chunk(axes.shape[0])
    for start in range(0, rows.shape[0], step):
        chunk = rows[start : start + step]
        idx = (chunk.float() @ axes32.T).abs_().argmax(dim=1)
        out_idx[start : start + step] = idx
        out_cos2[start : start + step] = (chunk * axes[idx]).sum(dim=1).square()
    return out_idx, out_cos2


def _scatter(rows: torch.Tensor, assignment: torch.Tensor, k: int) -> torch.Tensor:
    """(k, D, D) Σ x xᵀ over each cluster's rows."""
    d = rows.shape[1]
    total = torch.zeros(k, d, d, dtype=torch.float64)
    step = _chunk(d * d)
    for start in range(0, rows.shape[0], step):
        x = rows[start : start + step]
        total.index_add_(0, assignment[start : start + step], x.unsqueeze(2) * x.unsqueeze(1))
    return total


def _top_eigenvectors(scatter: torch.Tensor) -> torch.Tensor:
    """(k, D, D) symmetric → (k, D) unit eigenvectors of the largest eigenvalue, canonical sign."""
    _, vectors = torch.linalg.eigh(scatter)
    return canonical_sign(vectors[..., -1])


def _seed_plus_plus(rows: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """k-means++ on RP^(D−1): the first axis a uniformly drawn row, each next one a row drawn
    with probability ∝ sin²θ to its nearest chosen axis. Returns (k, D) canonical axes."""
    n = rows.shape[0]
    first = int(torch.randint(n, (1,), generator=gen))
    chosen = [canonical_sign(rows[first])]
    far = 1.0 - (rows @ chosen[0]).square()
    for _ in range(1, k):
        cumulative = far.clamp(min=0.0).cumsum(0)
        if float(cumulative[-1]) <= 0.0:  # every row already on a chosen axis: any row will do
            cumulative = torch.arange(1, n + 1, dtype=torch.float64)
        draw = torch.rand(1, generator=gen, dtype=torch.float64) * cumulative[-1]
        nxt = min(int(torch.searchsorted(cumulative, draw, right=True)), n - 1)
        chosen.append(canonical_sign(rows[nxt]))
        far = torch.minimum(far, 1.0 - (rows @ chosen[-1]).square())
    return torch.stack(chosen)


def _refill_empty(
    centroids: torch.Tensor, usage: torch.Tensor, rows: torch.Tensor, cos2: torch.Tensor
) -> torch.Tensor:
    """Give every empty cluster the worst-fitted rows (largest sin², lowest index on ties),
    one each, so no axis is lost."""
    empty = (usage == 0).nonzero().flatten()
    if len(empty) == 0:
        return centroids
    worst = torch.sort(cos2, stable=True).indices[: len(empty)]
    out = centroids.clone()
    out[empty] = canonical_sign(rows[worst])
    return out


def _lloyd(
    rows: torch.Tensor, centroids: torch.Tensor, max_iter: int, tol: float
) -> tuple[torch.Tensor, int]:
    """Alternate assignment and eigenvector updates until the assignment is stable or the
    objective improves by less than ``tol``. Returns (centroids, iterations)."""
    k = centroids.shape[0]
    previous, last_objective = None, math.inf
    for it in range(1, max_iter + 1):
        assignment, cos2 = assign_rows(rows, centroids)
        objective = 1.0 - float(cos2.mean())
        if previous is not None and (
            torch.equal(assignment, previous) or last_objective - objective < tol
        ):
            return centroids, it - 1
        usage = torch.bincount(assignment, minlength=k)
        centroids = _top_eigenvectors(_scatter(rows, assignment, k))
        centroids = _refill_empty(centroids, usage, rows, cos2)
        previous, last_objective = assignment, objective
    return centroids, max_iter


def projective_kmeans(
    rows: torch.Tensor,
    k: int,
    *,
    restarts: int = 4,
    max_iter: int = 100,
    tol: float = 1e-7,
    seed: int = 0,
    max_rows: int | None = None,
) -> ProjectiveKMeans:
    """k axes minimising the mean sin² projective angle of ``rows`` to their nearest axis.

    Args:
        rows: (N, D) rows of any norm (none zero), any float dtype; a row and its negative are
            the same point.
        k: number of axes, 1 ≤ k ≤ number of fitted rows.
        restarts: seeded k-means++ starts; the lowest objective on the fitted rows wins.
        max_iter: Lloyd steps per start; tol: a step that improves the objective by less stops.
        seed: seeds the row sample and every start (``torch.Generator().manual_seed``).
        max_rows: fit the centroids on a seeded sample of at most this many rows (all rows
            when ``None``); assignment, usage and objective are then over all N rows.

    Returns:
        :class:`ProjectiveKMeans`. Deterministic under ``seed``. Invariants: flipping the sign
        of any input rows gives the same result; rotating the rows by R rotates the centroids
        by R (up to rounding); the centroids of a previous result, clustered again with the
        same k, come back as the same set.
    """
    x = _unit_rows(rows)
    gen = torch.Generator().manual_seed(seed)
    fit = x
    if max_rows is not None and x.shape[0] > max_rows:
        if max_rows < 1:
            raise ValueError(f"max_rows must be ≥ 1, got {max_rows}")
        fit = x[torch.randperm(x.shape[0], generator=gen)[:max_rows].sort().values]
    if not 1 <= k <= fit.shape[0]:
        raise ValueError(f"k must be in [1, {fit.shape[0]}] (the rows fitted), got {k}")
    if restarts < 1 or max_iter < 1:
        raise ValueError(f"need restarts ≥ 1 and max_iter ≥ 1, got {restarts}, {max_iter}")
    best: tuple[float, torch.Tensor, int, int] | None = None
    for r in range(restarts):
        centroids, iterations = _lloyd(fit, _seed_plus_plus(fit, k, gen), max_iter, tol)
        objective = 1.0 - float(assign_rows(fit, centroids)[1].mean())
        # a later start must win by more than rounding: the same clustering reached from
        # another start (in another order) would otherwise win or lose by the last bit
        if best is None or objective < best[0] - RESTART_MARGIN:
            best = (objective, centroids, iterations, r)
    assert best is not None
    _, centroids, iterations, restart = best
    assignment, cos2 = assign_rows(x, centroids)
    usage = torch.bincount(assignment, minlength=k)
    order = torch.sort(-usage, stable=True).indices  # most used first
    rank = torch.empty_like(order)
    rank[order] = torch.arange(k)
    abs_cos = torch.zeros(k, dtype=torch.float64).index_add_(0, assignment, cos2.sqrt())
    mean_abs_cos = abs_cos / usage.clamp(min=1)  # 0 for an unused axis
    return ProjectiveKMeans(
        centroids=centroids[order],
        assignment=rank[assignment],
        usage=usage[order],
        objective=1.0 - float(cos2.mean()),
        mean_abs_cos=mean_abs_cos[order],
        iterations=iterations,
        restart=restart,
        fitted_rows=int(fit.shape[0]),
    )


@dataclass(frozen=True)
class KMeansNull:
    """Projective k-means on i.i.d. uniform rows of the same count and D, ``trials`` times.

    Attributes:
        n_rows, dim, k, seed: what every trial drew and fitted.
        objective: (trials,) mean sin²θ of each null clustering.
        perplexity: (trials,) usage perplexity of each null clustering.
    """

    n_rows: int
    dim: int
    k: int
    seed: int
    objective: np.ndarray
    perplexity: np.ndarray

    @property
    def trials(self) -> int:
        return int(self.objective.shape[0])

    def place(self, statistic: str, value: float) -> dict[str, float | int | None]:
        """``value`` of ``statistic`` (``objective`` or ``perplexity``) beside the null: mean,
        sd, z = (value − mean)/sd (None when sd is 0) and mid-rank percentile in [0, 100]."""
        if statistic not in ("objective", "perplexity"):
            raise ValueError(f"statistic must be 'objective' or 'perplexity', got {statistic!r}")
        null = getattr(self, statistic)
        mean, sd = float(null.mean()), float(null.std(ddof=1)) if self.trials > 1 else 0.0
        below = np.count_nonzero(null < value) + 0.5 * np.count_nonzero(null == value)
        return {
            "observed": value,
            "null_mean": mean,
            "null_sd": sd,
            "z": None if sd <= 0 else (value - mean) / sd,
            "percentile": float(100.0 * below / self.trials),
            "trials": self.trials,
        }


def kmeans_null(
    n_rows: int,
    dim: int,
    k: int,
    *,
    trials: int = 8,
    seed: int = 0,
    restarts: int = 4,
    max_iter: int = 100,
) -> KMeansNull:
    """The null of :func:`projective_kmeans`: the same clustering of ``n_rows`` i.i.d. uniform
    rows of S^(D−1) (normalised Gaussians), ``trials`` times; trial t draws its rows from
    ``torch.Generator().manual_seed(seed + t)`` and clusters them under the same seed."""
    if trials < 1:
        raise ValueError(f"trials must be ≥ 1, got {trials}")
    objective, perplexity = [], []
    for t in range(trials):
        gen = torch.Generator().manual_seed(seed + t)
        rows = torch.randn(n_rows, dim, generator=gen, dtype=torch.float64)
        fit = projective_kmeans(rows, k, restarts=restarts, max_iter=max_iter, seed=seed + t)
        objective.append(fit.objective)
        perplexity.append(fit.perplexity)
    return KMeansNull(n_rows, dim, k, seed, np.array(objective), np.array(perplexity))
