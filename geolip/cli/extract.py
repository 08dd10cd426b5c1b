"""``geolip codebook extract``: a producer's codebook from noise or from any dataset, by the
mean-row collapse or by projective k-means, beside its nulls."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from geolip.cli import output
from geolip.cli.options import FORCE, JSON
from geolip.cli.out_path import claim_output
from geolip.errors import InvalidOptionError

METHODS = ("mean", "kmeans", "anchors")
AGGREGATIONS = ("mean", "median")
NOISE_ONLY = "64 for a noise calibration; a dataset SPEC sets its own"


def _check_options(
    calibration: str, method: str, aggregation: str, k: int | None, n: Any, size: Any
) -> None:
    """Every refusal that needs no model, as a usage error naming the option."""
    from geolip.errors import DatasetError
    from geolip.producers.calibration import resolve_calibration

    if method not in METHODS:
        problem = f"expected one of {', '.join(METHODS)}, got {method!r}"
        raise InvalidOptionError("--method", problem)
    if aggregation not in AGGREGATIONS:
        raise InvalidOptionError(
            "--aggregation", f"expected one of {', '.join(AGGREGATIONS)}, got {aggregation!r}"
        )
    if method == "kmeans" and k is None:
        raise InvalidOptionError("--k", "--method kmeans needs the number of axes K")
    if method == "mean" and k is not None:
        raise InvalidOptionError("--k", "applies to --method kmeans only (mean gives ≤ V axes)")
    try:
        resolved = resolve_calibration(calibration)
    except DatasetError as err:
        raise InvalidOptionError("--calibration", err.problem) from None
    if resolved.spec is not None:
        for option, value in (("--n", n), ("--size", size)):
            if value is not None:
                key = option.lstrip("-")
                raise InvalidOptionError(
                    option,
                    f"--calibration {calibration!r} is a dataset spec, which names its own "
                    f"images: write {resolved.spec.name}:{key}={value},... instead",
                )


def extract(
    source: str = typer.Argument(..., help="Checkpoint folder, upstream file or pretrained:NAME."),
    out: Path = typer.Option(..., "--out", help="Artifact folder to write."),
    calibration: str = typer.Option(
        "sixteen_noise",
        "--calibration",
        help="A noise calibration (gaussian, uniform, sixteen_noise, ood_sixteen) or any "
        "dataset SPEC (geolip data list), e.g. shapes:n=256,size=64.",
    ),
    method: str = typer.Option(
        "mean",
        "--method",
        help="mean: average rows per slot, collapse antipodes (≤ V axes); kmeans: projective "
        "k-means of every per-patch row into --k axes; anchors: a GLFM's learned anchors.",
    ),
    k: int | None = typer.Option(
        None, "--k", min=1, help="Axes of --method kmeans.", show_default="required by kmeans"
    ),
    n: int | None = typer.Option(
        None, "--n", min=1, help="Noise calibration images.", show_default=NOISE_ONLY
    ),
    size: int | None = typer.Option(
        None, "--size", min=1, help="Noise calibration image side.", show_default=NOISE_ONLY
    ),
    seed: int = typer.Option(0, "--seed", help="Noise images, row sample, k-means, nulls."),
    aggregation: str = typer.Option(
        "mean", "--aggregation", help="mean or median (--method mean)."
    ),
    restarts: int = typer.Option(2, "--restarts", min=1, help="k-means++ starts (kmeans)."),
    max_iter: int = typer.Option(50, "--max-iter", min=1, help="Lloyd steps per start (kmeans)."),
    max_rows: int = typer.Option(
        65_536, "--max-rows", min=1, help="Rows the k-means centroids are fitted on (kmeans)."
    ),
    kmeans_null_trials: int = typer.Option(
        4, "--kmeans-null-trials", min=2, help="k-means fits on i.i.d. rows (kmeans)."
    ),
    null_trials: int = typer.Option(300, "--null-trials", min=10, help="Quality null trials."),
    force: bool = FORCE,
    json_out: bool = JSON,
) -> None:
    """Extract a producer's codebook beside its nulls.

    mean: the i.i.d. rows null and the controls (untrained network, other calibration, constant
    and shuffled input). kmeans: K axes with per-axis usage, objective and usage perplexity
    beside the same k-means on i.i.d. rows, quality beside K i.i.d. axes. anchors: the learned
    anchors of a producer with an anchor constellation (GLFM), collapsed, beside the rows null
    and the anchors at home; no calibration is read."""
    output.set_json_mode(json_out)
    _check_options(calibration, method, aggregation, k, n, size)
    claim_output(out, kind="artifact", force=force)
    from geolip.cli.codebook import summary
    from geolip.producers.extract import extract_codebook
    from geolip.producers.extract_kmeans import extract_kmeans_codebook
    from geolip.producers.loading import load_producer, require_producer

    producer = require_producer(load_producer(source), source)
    if method == "anchors":
        from geolip.producers.anchor_codebook import anchor_codebook
        from geolip.producers.anchor_constellation import AnchorConstellation

        if not isinstance(getattr(producer, "constellation", None), AnchorConstellation):
            problem = f"{source} has no anchor constellation (a GLFM with lookup 'anchors' has)"
            raise InvalidOptionError("--method", problem)
        with output.status("anchors: collapse, null model, home control"):
            cb = anchor_codebook(producer, null_trials=null_trials, seed=seed)
    elif method == "kmeans":
        assert k is not None
        with output.status(f"encoding, projective k-means (K={k}), {kmeans_null_trials} null fits"):
            cb = extract_kmeans_codebook(
                producer,
                calibration,
                k,
                n=n,
                size=size,
                seed=seed,
                restarts=restarts,
                max_iter=max_iter,
                max_rows=max_rows,
                null_trials=kmeans_null_trials,
                quality_null_trials=null_trials,
            )
    else:
        with output.status("extracting: calibration, null model, untrained and other controls"):
            cb = extract_codebook(
                producer,
                calibration,
                n=n,
                seed=seed,
                size=size,
                aggregation=aggregation,  # type: ignore[arg-type]
                null_trials=null_trials,
            )
    cb.save(out)
    output.log(f"wrote {out}")
    doc = summary(cb, path=out)
    report = cb.meta.extra.get("kmeans")
    doc["kmeans"] = report
    output.emit_summary(doc)
    if report is not None:
        output.emit_rows(
            ["statistic", "observed", "i.i.d. rows null", "z", "percentile"],
            [
                [
                    name,
                    f"{report[name]['observed']:.4f}",
                    f"{report[name]['null_mean']:.4f} ± {report[name]['null_sd']:.4f}",
                    report[name]["z"],
                    report[name]["percentile"],
                ]
                for name in ("objective", "perplexity")
            ],
            f"k-means of {report['rows']} rows (fitted on {report['fitted_rows']}) beside "
            "the same k-means on i.i.d. rows",
        )
