"""Producer + data → a K-axis codebook of the rows it actually emits (projective k-means).

The mean extraction (:mod:`geolip.producers.extract`) reads one averaged row per row slot and
sits inside the i.i.d. null. This one clusters every per-patch row of a dataset on RP^(D−1)
(:func:`geolip.solvers.projective_kmeans.projective_kmeans`): K is the user's, each axis
records how many rows it won (``usage``) and their mean |cos| (``mean_abs_cos``), and the
clustering is placed beside its null, the same k-means on i.i.d. uniform rows of the same
count (objective: mean sin² to the nearest axis; usage perplexity). Rows concentrated in a few
directions give an objective below the null; a few dominant axes give a perplexity below it.
"""

from __future__ import annotations

from typing import Any

from geolip.codebook import Codebook, ExtractionInfo, Lineage
from geolip.producers.calibration import calibration_images, image_size
from geolip.producers.contract import Producer
from geolip.producers.rows import collect_rows
from geolip.solvers.projective_kmeans import ProjectiveKMeans, kmeans_null, projective_kmeans

NULL_SEED_OFFSET = 1_000_003
"""The null's trials are seeded from seed + this, so they never replay the data fit's stream."""


def extract_kmeans_codebook(
    producer: Producer,
    calibration: str,
    k: int,
    *,
    n: int | None = None,
    size: int | None = None,
    seed: int = 0,
    restarts: int = 2,
    max_iter: int = 50,
    max_rows: int | None = 65_536,
    null_trials: int = 4,
    quality_null_trials: int = 300,
    batch_size: int = 16,
    name: str | None = None,
    progress: bool = False,
) -> Codebook:
    """Cluster the per-patch rows a producer emits on a calibration set into K axes.

    Args:
        producer: any :class:`~geolip.producers.contract.Producer`; encoded under ``frozen()``.
        calibration: a noise calibration name or a dataset spec
            (:func:`geolip.producers.calibration.calibration_images`, with ``n``, ``size``).
        k: axes wanted (≤ the rows fitted).
        seed: seeds the noise calibration, the row sample and the k-means starts.
        restarts, max_iter, max_rows: as :func:`~geolip.solvers.projective_kmeans.projective_kmeans`
            (the centroids are fitted on at most ``max_rows`` rows; usage counts every row).
        null_trials: k-means fits on i.i.d. rows (as many as were fitted) behind the null.
        quality_null_trials: trials of the codebook's quality null (K i.i.d. axes).

    Returns:
        A Codebook (axes most used first) with stats ``usage`` (rows per axis over all N·P·V
        rows) and ``mean_abs_cos``; meta ``extraction`` (aggregation ``kmeans``, no pair
        threshold), ``quality`` beside K i.i.d. axes and ``extra["kmeans"]``
        (:func:`kmeans_report`).
    """
    images, label = calibration_images(
        calibration, producer.geometry.channels, n=n, size=size, seed=seed, device=producer.device
    )
    with producer.frozen():
        m = collect_rows(producer, images, batch_size, progress)  # (N, P, V, D)
    fit = projective_kmeans(
        m.reshape(-1, m.shape[-1]),
        k,
        restarts=restarts,
        max_iter=max_iter,
        seed=seed,
        max_rows=max_rows,
    )
    report = kmeans_report(
        fit, null_trials=null_trials, seed=seed, restarts=restarts, max_iter=max_iter
    )
    extraction = ExtractionInfo(
        calibration=label,
        n=images.shape[0],
        seed=seed,
        aggregation="kmeans",
        pair_threshold=None,
        n_rows=m.shape[2],
        n_pairs=0,
    )
    parameters = {
        "size": image_size(images),
        "k": k,
        "restarts": restarts,
        "max_iter": max_iter,
        "max_rows": max_rows,
    }
    cb = Codebook.from_axes(
        fit.centroids,
        name=name or f"{label}-kmeans{k}-n{images.shape[0]}",
        stats={"usage": fit.usage.float(), "mean_abs_cos": fit.mean_abs_cos.float()},
        producer=producer.producer_info(),
        extraction=extraction,
        lineage=Lineage(operation="extract", parameters=parameters),
        extra={"kmeans": report},
    )
    return cb.with_meta(quality=cb.assess(null_trials=quality_null_trials, seed=seed))


def kmeans_report(
    fit: ProjectiveKMeans, *, null_trials: int, seed: int, restarts: int = 2, max_iter: int = 50
) -> dict[str, Any]:
    """The fit's objective and usage perplexity, each placed in :func:`kmeans_null` for the
    same fitted row count, D, K, restarts and max_iter, as a JSON-safe dict: ``rows``
    (all rows), ``fitted_rows``, ``iterations``, ``objective`` and ``perplexity`` (each with
    observed, null mean, sd, z, percentile, trials), ``null_seed``."""
    null_seed = seed + NULL_SEED_OFFSET
    null = kmeans_null(
        fit.fitted_rows,
        fit.centroids.shape[1],
        fit.k,
        trials=null_trials,
        seed=null_seed,
        restarts=restarts,
        max_iter=max_iter,
    )
    return {
        "rows": int(fit.assignment.shape[0]),
        "fitted_rows": fit.fitted_rows,
        "iterations": fit.iterations,
        "objective": null.place("objective", fit.objective),
        "perplexity": null.place("perplexity", fit.perplexity),
        "null_seed": null_seed,
    }
