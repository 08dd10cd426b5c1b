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


def assess_quality(cb: Codebook, null_trials: int = 300, seed: int = 0) -> QualityReport:
    """Mean projective angle, deviation, statute and effective rank, with the null percentile.

    Every statistic, the effective rank included, is placed in one null of ``null_trials``
    random codebooks: "rows" (V random rows collapsed with the same pair threshold, so each
    null codebook has the size an extraction of random rows would give) when the meta records
    an extraction by antipodal collapse, else "axes" (K random axes; also for k-means
    extraction, whose threshold is None): the i.i.d. model that reproduces the upstream
    statistics.
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
    erank = float(effective_rank(torch.linalg.svdvals(cb.axes.double())))
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
        effective_rank_null_mean=summary["effective_rank"]["mean"],
        effective_rank_null_sd=summary["effective_rank"]["sd"],
        effective_rank_null_trials=null.n_trials,
        effective_rank_percentile=null.percentile(erank, "effective_rank"),
        null=null_report,
    )
