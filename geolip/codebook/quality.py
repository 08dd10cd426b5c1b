"""Quality of a codebook: every statistic beside its exact baseline and its i.i.d. null."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from geolip.codebook.schema import NullReport, QualityReport
from geolip.solvers.metrics import effective_rank
from geolip.solvers.null import null_codebook_stats
from geolip.solvers.projective import (
    mean_projective_angle,
    monte_carlo_rp_baseline,
    statute,
    uniform_rp_baseline,
)

if TYPE_CHECKING:
    from geolip.codebook.core import Codebook


_ERANK_NULL_MIN_TRIALS = 32


def _random_axes(k: int, dim: int, trials: int, seed: int) -> torch.Tensor:
    """(trials, k, dim) i.i.d. uniform unit axes, float64."""
    gen = torch.Generator().manual_seed(seed)
    rows = torch.randn(trials, k, dim, generator=gen, dtype=torch.float64)
    return rows / rows.norm(dim=-1, keepdim=True)


def _percentile(value: float, null: torch.Tensor) -> float:
    """Mid-rank percentile of ``value`` among ``null``, in [0, 100]."""
    below = int((null < value).sum())
    ties = int((null == value).sum())
    return 100.0 * (below + 0.5 * ties) / null.numel()


def assess_quality(cb: Codebook, null_trials: int = 300, seed: int = 0) -> QualityReport:
    """Mean projective angle, deviation, statute and effective rank, with the null percentile.

    The effective rank is placed among ``max(32, null_trials)`` codebooks of K i.i.d. uniform
    axes of the same D (mean, sd, percentile).

    The null is "rows" (V random rows collapsed with the same pair threshold) when the meta
    records an extraction by antipodal collapse, else "axes" (K random axes; also for k-means
    extraction, whose threshold is None): the i.i.d. model that reproduces the upstream
    statistics (spec §B.4).
    """
    if cb.size < 2:
        raise ValueError("quality needs at least 2 axes")
    angle, method = mean_projective_angle(cb.axes)
    base = uniform_rp_baseline(cb.dim)
    dev = angle - base
    ext = cb.meta.extraction
    if ext is not None and ext.pair_threshold is None:  # clustered, not collapsed: K axes
        ext = None
    if ext is not None:
        report = statute(dev, n_pairs=ext.n_pairs, n_axes=cb.size, n_rows=ext.n_rows)
        null = null_codebook_stats(
            ext.n_rows,
            cb.dim,
            n_trials=null_trials,
            kind="rows",
            threshold=ext.pair_threshold,
            seed=seed,
        )
    else:
        report = statute(dev)
        null = null_codebook_stats(cb.size, cb.dim, n_trials=null_trials, kind="axes", seed=seed)
    summary = null.summary()
    null_report = NullReport(
        kind=null.kind,
        n_trials=null.n_trials,
        seed=seed,
        deviation_mean=summary["deviation"]["mean"],
        deviation_sd=summary["deviation"]["sd"],
        deviation_p5=summary["deviation"]["p5"],
        deviation_p95=summary["deviation"]["p95"],
        clean_fraction=summary["clean_fraction"],
        percentile=null.percentile(dev),
        pairs_mean=summary["pairs"]["mean"] if ext is not None else None,
        pairs_percentile=null.percentile(ext.n_pairs, "pairs") if ext is not None else None,
    )
    sv = torch.linalg.svdvals(cb.axes.double())
    erank = float(effective_rank(sv))
    # one SVD of a K×D matrix per null codebook: cheap, so as many as the deviation null
    erank_trials = max(_ERANK_NULL_MIN_TRIALS, null_trials)
    null_sv = torch.linalg.svdvals(_random_axes(cb.size, cb.dim, erank_trials, seed))
    null_erank = effective_rank(null_sv)
    return QualityReport(
        mean_projective_angle=angle,
        mean_angle_method=method,
        uniform_baseline=base,
        uniform_baseline_mc=monte_carlo_rp_baseline(cb.dim),
        deviation=dev,
        statute=report.statute,
        clean=report.clean,
        pair_fraction=report.pair_fraction,
        pair_fraction_rows=report.pair_fraction_rows,
        effective_rank=erank,
        effective_rank_null_mean=float(null_erank.mean()),
        effective_rank_null_sd=float(null_erank.std()),
        effective_rank_null_trials=erank_trials,
        effective_rank_percentile=_percentile(erank, null_erank),
        null=null_report,
    )
