"""Solving primitives of OMEGA §4 on any encoder: ``project`` and ``solve_basis``.

The third primitive, ``align``, is :func:`geolip.solvers.alignment.align_projective`. An
*encoder* is any callable that maps a batch of inputs (B, ...) to rows (B, ..., D): a
producer's ``encode_rows``, or ``lambda x: x`` for points that already are vectors of R^D.
Nothing here knows what a model or a file is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from geolip.solvers.projective_kmeans import ProjectiveKMeans, projective_kmeans

Encoder = Callable[[torch.Tensor], torch.Tensor]
"""Inputs (B, ...) → rows (B, ..., D)."""

SPAN_EPS = 1e-9
"""An axis whose component off the chosen span is shorter than this adds nothing to it."""


def encode_points(points: torch.Tensor, encode: Encoder, batch_size: int = 64) -> torch.Tensor:
    """``encode`` applied to ``points`` (N, ...) in batches of ``batch_size`` along dim 0.

    Returns:
        (R, D) float64 rows on the CPU, R = N × rows per input, in input order.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
    parts = []
    for start in range(0, points.shape[0], batch_size):
        out = encode(points[start : start + batch_size])
        parts.append(out.detach().reshape(-1, out.shape[-1]).cpu().double())
    if not parts:
        raise ValueError("no points to encode")
    return torch.cat(parts)


def project(
    points: torch.Tensor,
    encode: Encoder,
    k: int,
    *,
    batch_size: int = 64,
    seed: int = 0,
    restarts: int = 4,
    max_iter: int = 100,
    max_rows: int | None = None,
) -> ProjectiveKMeans:
    """The codebook of a point cloud seen through an encoder: its rows, clustered into k axes.

    Every input is encoded to rows (``encode``), and all rows are summarised by projective
    k-means on RP^(D−1) (:func:`~geolip.solvers.projective_kmeans.projective_kmeans`, a row
    and its negative one point).

    Args:
        points: (N, ...) inputs the encoder takes.
        encode: inputs (B, ...) → rows (B, ..., D).
        k: axes to return; batch_size: inputs per encoder call.
        seed, restarts, max_iter, max_rows: as in ``projective_kmeans``.

    Returns:
        :class:`ProjectiveKMeans` whose ``centroids`` (k, D) are the axes, most used first,
        with each row's assignment in input order.
    """
    rows = encode_points(points, encode, batch_size)
    return projective_kmeans(
        rows, k, restarts=restarts, max_iter=max_iter, seed=seed, max_rows=max_rows
    )


@dataclass(frozen=True)
class BasisSolution:
    """Result of :func:`solve_basis`.

    Attributes:
        indices: (m,) int64 axes in the order they were chosen, m ≤ k.
        captured: (m,) float64 share of the targets' energy Σ‖r‖² inside the span of the first
            1, 2, …, m chosen axes; non-decreasing, at most 1.
    """

    indices: torch.Tensor
    captured: torch.Tensor


def solve_basis(
    targets: torch.Tensor,
    axes: torch.Tensor,
    k: int,
    *,
    encode: Encoder | None = None,
    batch_size: int = 64,
) -> BasisSolution:
    """The k axes of a codebook whose span best holds the targets (greedy forward selection).

    Targets are encoded first when ``encode`` is given (else they are rows (..., D) already)
    and unit-normalised, so each target counts once whatever its norm and sign. Step t adds the
    axis whose component off the span chosen so far captures the most of the targets' scatter
    S = Σ r rᵀ (ties: the lowest index); an axis already inside the span is never chosen, so
    fewer than k come back when the axes span less. Greedy selection is not guaranteed to find
    the best k-subset.

    Args:
        targets: (N, ...) inputs of ``encode``, or rows (..., D) when ``encode`` is None.
        axes: (K, D) axes of a codebook (any norm, any sign).
        k: axes wanted, 1 ≤ k ≤ min(K, D).

    Returns:
        :class:`BasisSolution`. Invariant to the sign of any target or axis and to a rotation
        applied to both.
    """
    rows = encode_points(targets, encode, batch_size) if encode is not None else targets
    rows = rows.detach().reshape(-1, rows.shape[-1]).cpu().double()
    a = axes.detach().cpu().double()
    if a.ndim != 2 or a.shape[1] != rows.shape[1]:
        raise ValueError(f"axes must be (K, D={rows.shape[1]}), got shape {tuple(a.shape)}")
    if not 1 <= k <= min(a.shape):
        raise ValueError(f"k must be in [1, min(K, D) = {min(a.shape)}], got {k}")
    rows = rows[rows.norm(dim=1) > 0]
    if rows.shape[0] == 0:
        raise ValueError("no non-zero targets")
    rows = rows / rows.norm(dim=1, keepdim=True)
    a = a / a.norm(dim=1, keepdim=True)
    scatter = rows.T @ rows  # (D, D), trace = number of targets
    total = float(scatter.trace())
    basis = torch.zeros(0, a.shape[1], dtype=torch.float64)
    chosen: list[int] = []
    captured: list[float] = []
    for _ in range(k):
        off = a - (a @ basis.T) @ basis  # components off the span, (K, D)
        length = off.norm(dim=1)
        usable = length > SPAN_EPS
        usable[chosen] = False
        if not usable.any():
            break
        u = off / length.clamp(min=SPAN_EPS).unsqueeze(1)
        gain = torch.where(usable, ((u @ scatter) * u).sum(dim=1), torch.full_like(length, -1.0))
        j = int(gain.argmax())
        chosen.append(j)
        basis = torch.cat([basis, u[j : j + 1]])
        captured.append(float(torch.einsum("id,de,ie->", basis, scatter, basis)) / total)
    return BasisSolution(
        indices=torch.tensor(chosen, dtype=torch.int64),
        captured=torch.tensor(captured, dtype=torch.float64),
    )
