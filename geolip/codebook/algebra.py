"""Codebook algebra: merge, diff, extend, align, rotate. Every result records its lineage.

Functions take and return :class:`geolip.Codebook` objects; they build results through
``type(parent).from_axes`` so this module needs no import of the class itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from geolip.codebook.schema import Lineage
from geolip.errors import IncompatibleCodebooksError
from geolip.solvers.alignment import align_projective
from geolip.solvers.projective import projective_angle

if TYPE_CHECKING:
    from geolip.codebook.core import Codebook


def compatibility_report(a: Codebook, b: Codebook) -> dict[str, Any]:
    """Field-by-field comparison of two codebooks (what must match to combine them)."""
    pa, pb = a.meta.producer, b.meta.producer
    return {
        "compatible": a.dim == b.dim,
        "dim": [a.dim, b.dim],
        "size": [a.size, b.size],
        "ids": [a.id, b.id],
        "names": [a.name, b.name],
        "producers": [pa.kind if pa else None, pb.kind if pb else None],
    }


def require_compatible(a: Codebook, b: Codebook, operation: str) -> None:
    """Raise :class:`IncompatibleCodebooksError` (with a report) when the dimensions differ."""
    if a.dim != b.dim:
        raise IncompatibleCodebooksError(
            f"cannot {operation} codebooks of different dimension: {a.name!r} has D={a.dim}, "
            f"{b.name!r} has D={b.dim}",
            compatibility_report(a, b),
        )


def derive(
    parent: Codebook,
    axes: torch.Tensor,
    *,
    operation: str,
    parents: list[str],
    name: str | None = None,
    stats: dict[str, torch.Tensor] | None = None,
    keep_measurements: bool = False,
    **parameters: Any,
) -> Codebook:
    """A new codebook made from ``parent`` by ``operation``, with its lineage recorded.

    ``keep_measurements`` carries the parent's extraction and quality over; only operations
    that leave every invariant statistic unchanged (rotations) may set it.
    """
    meta = parent.meta
    return type(parent).from_axes(
        axes,
        name=name or meta.name,
        stats=stats,
        producer=meta.producer,
        extraction=meta.extraction if keep_measurements else None,
        quality=meta.quality if keep_measurements else None,
        lineage=Lineage(operation=operation, parents=parents, parameters=parameters),
    )


def _into_frame(a: Codebook, b: Codebook, align: bool) -> tuple[torch.Tensor, dict[str, Any]]:
    """b's axes (K_b, D) float64 expressed in a's frame, and a summary of the alignment."""
    if not align:
        return b.axes.double(), {"align": False}
    res = a.align(b, null_trials=0)
    inl = res.residual_deg[res.inliers]
    summary = {
        "align": True,
        "matched": int(res.matching.shape[0]),
        "inliers": int(res.inliers.sum()),
        "inlier_mean_residual_deg": float(inl.mean()) if len(inl) else None,
    }
    # R maps a's frame onto b's, so b's rows come back with Rᵀ: x ↦ Rᵀx, i.e. x @ R.
    return b.axes.double() @ res.rotation, summary


def _nearest_deg(rows: torch.Tensor, axes: torch.Tensor) -> torch.Tensor:
    """(N, D), (K, D) → (N,) smallest projective angle from each row to any axis, degrees."""
    return torch.rad2deg(projective_angle(rows, axes.double()).min(dim=1).values)


def _shared_stats(
    first: Codebook, second: Codebook, picked: torch.Tensor
) -> dict[str, torch.Tensor] | None:
    s1, s2 = first.stats, second.stats
    if not s1 or s1.keys() != s2.keys():
        return None
    return {n: torch.cat([s1[n], s2[n][picked]]) for n in s1}


def aligned_to(cb: Codebook, reference: Codebook, **options: Any) -> Codebook:
    """``cb`` rotated into ``reference``'s frame (lineage ``align``, parents [cb, reference])."""
    res = reference.align(cb, **options)
    return derive(
        cb,
        cb.axes.double() @ res.rotation,
        operation="align",
        parents=[cb.id, reference.id],
        keep_measurements=True,
        stats=cb.stats,
        mean_residual_deg=float(res.residual_deg.mean()),
        z_score=None if res.z_score is None else float(res.z_score),
        matched=int(res.matching.shape[0]),
    )


def merge(
    a: Codebook, b: Codebook, *, tol_deg: float = 5.0, align: bool = True, name: str | None = None
) -> Codebook:
    """a's axes unchanged (indices kept), then b's axes (in b's order, moved into a's frame)
    whose projective angle to every axis of a exceeds ``tol_deg``."""
    require_compatible(a, b, "merge")
    moved, summary = _into_frame(a, b, align)
    novel = _nearest_deg(moved, a.axes) > tol_deg
    picked = novel.nonzero().flatten()
    axes = torch.cat([a.axes.double(), moved[picked]]) if len(picked) else a.axes
    producer_match = a.meta.producer == b.meta.producer
    out = derive(
        a,
        axes,
        operation="merge",
        parents=[a.id, b.id],
        name=name or f"{a.name}+{b.name}",
        stats=_shared_stats(a, b, picked),
        tol_deg=tol_deg,
        added=len(picked),
        **summary,
    )
    return out if producer_match else out.with_meta(producer=None)


@dataclass(frozen=True)
class CodebookDiff:
    """Axes of a codebook with no partner within ``tol_deg`` in another.

    Attributes:
        indices: (n,) int64 indices into the first codebook, ascending.
        angles_deg: (n,) float64 projective angle to the nearest axis of the other (degrees).
        axes: (n, D) float32 the axes themselves.
        tol_deg: the tolerance used.
        codebook: those axes as a Codebook with lineage ``diff``, or ``None`` when n = 0.
    """

    indices: torch.Tensor
    angles_deg: torch.Tensor
    axes: torch.Tensor
    tol_deg: float
    codebook: Codebook | None

    def __len__(self) -> int:
        return int(self.indices.shape[0])


def diff(a: Codebook, b: Codebook, *, tol_deg: float = 5.0, align: bool = True) -> CodebookDiff:
    """The axes of a that have no partner within ``tol_deg`` in b, after aligning b to a."""
    require_compatible(a, b, "diff")
    moved, summary = _into_frame(a, b, align)
    nearest = _nearest_deg(a.axes.double(), moved)
    idx = (nearest > tol_deg).nonzero().flatten()
    cb = None
    if len(idx):
        stats = {n: t[idx] for n, t in a.stats.items()}
        cb = derive(
            a,
            a.axes[idx],
            operation="diff",
            parents=[a.id, b.id],
            name=f"{a.name}-{b.name}",
            stats=stats,
            tol_deg=tol_deg,
            indices=idx.tolist(),
            **summary,
        )
    return CodebookDiff(
        indices=idx, angles_deg=nearest[idx], axes=a.axes[idx], tol_deg=tol_deg, codebook=cb
    )


def extend(a: Codebook, new: Any, *, name: str | None = None) -> Codebook:
    """Append ``new`` ((N, D) rows or a Codebook) after a's axes; existing indices never move."""
    parents = [a.id]
    stats = None
    if hasattr(new, "axes") and hasattr(new, "id"):
        require_compatible(a, new, "extend")
        parents.append(new.id)
        stats = _shared_stats(a, new, torch.arange(new.size))
        rows = new.axes.double()
    else:
        rows = torch.as_tensor(new).detach().cpu().double()
        if rows.ndim == 1:
            rows = rows.unsqueeze(0)
        if rows.ndim != 2 or rows.shape[1] != a.dim:
            raise IncompatibleCodebooksError(
                f"cannot extend a D={a.dim} codebook with rows of shape {tuple(rows.shape)}",
                {"compatible": False, "dim": [a.dim, rows.shape[-1]], "ids": [a.id, None]},
            )
    if rows.shape[0] == 0:
        return a
    nearest = _nearest_deg(rows, a.axes)
    return derive(
        a,
        torch.cat([a.axes.double(), rows]),
        operation="extend",
        parents=parents,
        name=name,
        stats=stats,
        added=int(rows.shape[0]),
        min_angle_to_existing_deg=float(nearest.min()),
    )


def novel_count_null(
    a: Codebook,
    k_b: int,
    *,
    tol_deg: float = 5.0,
    align: bool = True,
    n_trials: int = 16,
    seed: int = 0,
) -> dict[str, Any]:
    """What :func:`diff` and :func:`merge` count when the second codebook is i.i.d. noise.

    Each trial draws K_b i.i.d. uniform axes of a's D (one seeded generator), moves them into
    a's frame as the operations do (aligned unless ``align`` is false) and counts a's axes
    without a partner within ``tol_deg`` (``diff``), the random axes farther than ``tol_deg``
    from every axis of a (``merge``'s ``added``) and, when aligned, the alignment inliers.

    Returns:
        ``{"n_trials", "seed", "diff_mean", "diff_sd", "merge_mean", "merge_sd",
        "inliers_mean", "inliers_sd", "inliers_p95"}`` (inlier entries ``None`` unaligned).
    """
    if n_trials < 2:
        raise ValueError(f"n_trials must be >= 2, got {n_trials}")
    gen = torch.Generator().manual_seed(seed)
    base = a.axes.double()
    counts: dict[str, list[float]] = {"diff": [], "merge": [], "inliers": []}
    for _ in range(n_trials):
        rows = torch.randn(k_b, a.dim, generator=gen, dtype=torch.float64)
        b = rows / rows.norm(dim=1, keepdim=True)
        if align:
            res = align_projective(base, b, null_trials=0, seed=seed)
            b = b @ res.rotation
            counts["inliers"].append(float(res.inliers.sum()))
        counts["diff"].append(float((_nearest_deg(base, b) > tol_deg).sum()))
        counts["merge"].append(float((_nearest_deg(b, base) > tol_deg).sum()))
    out: dict[str, Any] = {"n_trials": n_trials, "seed": seed}
    for key, values in counts.items():
        t = torch.tensor(values, dtype=torch.float64)
        if not values:
            out.update({f"{key}_mean": None, f"{key}_sd": None})
            continue
        out.update({f"{key}_mean": t.mean().item(), f"{key}_sd": t.std().item()})
    inl = counts["inliers"]
    out["inliers_p95"] = float(torch.tensor(inl).quantile(0.95)) if inl else None
    return out
