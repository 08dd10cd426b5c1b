"""``geolip features``, ``geolip classify train|eval`` and ``geolip ood score|eval``.

Datasets are named by specs (``shapes:n=600,size=64``, ``noise:kind=gaussian``, ...; see
:mod:`geolip.data.specs`). Features are cached (``--cache-dir``, default
``~/.cache/geolip/features``), so running a command twice encodes the images once.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

from geolip.cli import output
from geolip.cli.options import FORCE, JSON, command_group, dataset_spec
from geolip.cli.out_path import claim_output

PRODUCER = typer.Argument(..., help="Checkpoint folder, upstream file or pretrained:NAME.")
CODEBOOK = typer.Option(..., "--codebook", help="The producer's codebook artifact.")
DATASET = typer.Option(
    ..., "--dataset", help="Dataset spec, e.g. shapes:n=600,size=64.", parser=dataset_spec
)
CACHE = typer.Option(
    None,
    "--cache-dir",
    help="Feature cache.",
    show_default="$GEOLIP_FEATURES_CACHE, else $GEOLIP_CACHE_DIR/features, "
    "else ~/.cache/geolip/features",
)
NO_CACHE = typer.Option(False, "--no-cache", help="Compute without reading or writing a cache.")
BATCH = typer.Option(32, "--batch-size", min=1, help="Images encoded at once.")

classify_app = command_group("Heads on frozen codebook features.")
ood_app = command_group("Out-of-distribution scores of a frozen producer.")


def _cache(cache_dir: Path | None, no_cache: bool) -> Path | None:
    from geolip.downstream.features import default_cache_dir

    return None if no_cache else (cache_dir or default_cache_dir())


def _load(source: str, codebook: Path) -> tuple[Any, Any]:
    from geolip.codebook import Codebook
    from geolip.producers.loading import load_producer, require_producer

    return require_producer(load_producer(source), source), Codebook.load(codebook)


def _features(producer: Any, cb: Any, spec: str, kinds: tuple[str, ...], **options: Any) -> Any:
    from geolip.data import open_dataset
    from geolip.downstream.features import compute_features

    dataset = open_dataset(spec)
    return dataset, compute_features(producer, cb, dataset, kinds, **options)  # type: ignore[arg-type]


def features(
    source: str = PRODUCER,
    codebook: Path = CODEBOOK,
    dataset: str = DATASET,
    kinds: str = typer.Option("mean,hist", "--kinds", help="Comma-separated: mean, hist, map."),
    batch_size: int = BATCH,
    cache_dir: Path | None = CACHE,
    no_cache: bool = NO_CACHE,
    json_out: bool = JSON,
) -> None:
    """Pooled activation features of a dataset under a frozen producer + codebook (cached)."""
    output.set_json_mode(json_out)
    producer, cb = _load(source, codebook)
    start = time.perf_counter()
    _, f = _features(
        producer,
        cb,
        dataset,
        tuple(k.strip() for k in kinds.split(",") if k.strip()),
        batch_size=batch_size,
        cache_dir=_cache(cache_dir, no_cache),
        progress=not json_out,
    )
    output.emit(
        {
            "dataset": dataset,
            "n": len(f),
            "size": list(f.size),
            "shapes": {k: list(v.shape) for k, v in f.tensors.items()},
            "from_cache": f.from_cache,
            "path": None if f.path is None else str(f.path),
            "key": f.key,
            "producer_id": f.producer_id,
            "codebook_id": f.codebook_id,
            "dataset_fingerprint": f.dataset_fingerprint,
            "seconds": round(time.perf_counter() - start, 3),
        },
        "features",
    )


@classify_app.command("train")
def classify_train(
    source: str = PRODUCER,
    codebook: Path = CODEBOOK,
    dataset: str = DATASET,
    out: Path = typer.Option(..., "--out", help="Head file to write (.safetensors)."),
    feature: str = typer.Option("mean", "--feature", help="mean, hist or map."),
    head: str = typer.Option("linear", "--head", help="linear or mlp."),
    hidden: int = typer.Option(64, "--hidden", min=1, help="MLP hidden units."),
    epochs: int = typer.Option(100, "--epochs", min=1),
    lr: float = typer.Option(3e-3, "--lr"),
    seed: int = typer.Option(0, "--seed"),
    test: list[str] = typer.Option(
        [],
        "--test",
        help="Dataset spec to evaluate on (repeat).",
        parser=dataset_spec,
        show_default="none",
    ),
    batch_size: int = BATCH,
    cache_dir: Path | None = CACHE,
    no_cache: bool = NO_CACHE,
    force: bool = FORCE,
    json_out: bool = JSON,
) -> None:
    """Train a head on frozen features of one dataset; optionally evaluate it on others."""
    output.set_json_mode(json_out)
    claim_output(out, kind="file", force=force)
    from geolip.downstream.classify import save_head, train_head

    producer, cb = _load(source, codebook)
    options = {"batch_size": batch_size, "cache_dir": _cache(cache_dir, no_cache)}
    train, f = _features(producer, cb, dataset, (feature,), progress=not json_out, **options)
    trained = train_head(
        f, feature, classes=train.classes, kind=head, hidden=hidden, epochs=epochs, lr=lr, seed=seed
    )  # type: ignore[arg-type]
    save_head(trained, out)
    output.log(f"wrote {out}")
    results = {
        spec: trained.evaluate(_features(producer, cb, spec, (feature,), **options)[1]).as_dict()
        for spec in test
    }
    output.emit(
        {
            "out": str(out),
            "head": head,
            "feature": feature,
            "parameters": trained.head.param_count(),
            "train": trained.evaluate(f).as_dict(),
            "test": results,
        },
        "classification head (ci95: 95 % Wilson interval; chance: the most frequent label)",
    )


@classify_app.command("eval")
def classify_eval(
    head_path: Path = typer.Argument(..., help="Head file written by classify train."),
    source: str = PRODUCER,
    codebook: Path = CODEBOOK,
    dataset: list[str] = typer.Option(
        ..., "--dataset", help="Dataset spec (repeat).", parser=dataset_spec
    ),
    batch_size: int = BATCH,
    cache_dir: Path | None = CACHE,
    no_cache: bool = NO_CACHE,
    json_out: bool = JSON,
) -> None:
    """Accuracy of a trained head on datasets at any resolution (no change to the head)."""
    output.set_json_mode(json_out)
    from geolip.downstream.classify import load_head

    trained = load_head(head_path)
    producer, cb = _load(source, codebook)
    options = {"batch_size": batch_size, "cache_dir": _cache(cache_dir, no_cache)}
    kinds = (trained.info.feature,)
    rows = []
    for spec in dataset:
        _, f = _features(producer, cb, spec, kinds, progress=not json_out, **options)
        rows.append({"dataset": spec, "size": list(f.size), **trained.evaluate(f).as_dict()})
    output.emit_rows(
        ["dataset", "size", "n", "accuracy", "95 % interval", "chance", "above chance"],
        [
            [
                r["dataset"],
                "×".join(map(str, r["size"])),
                r["n"],
                f"{r['accuracy']:.4f}",
                f"{r['ci95'][0]:.4f} – {r['ci95'][1]:.4f}",
                f"{r['chance']:.4f}",
                r["above_chance"],
            ]
            for r in rows
        ],
        f"{trained.info.config.kind} head on {trained.info.feature!r} features "
        "(Wilson interval; chance: always the most frequent label)",
    )
    if json_out:
        output.emit({"head": str(head_path), "results": rows}, "evaluation")


@ood_app.command("score")
def ood_score(
    source: str = PRODUCER,
    codebook: Path = CODEBOOK,
    dataset: str = DATASET,
    null_trials: int = typer.Option(16, "--null-trials", min=0, help="0, or >= 2."),
    per_image: bool = typer.Option(False, "--per-image", help="Also list every image's distance."),
    id_dataset: str | None = typer.Option(
        None,
        "--id-dataset",
        help="In-distribution data: split into batches of the scored size, they give the null "
        "the score is placed in (batch.id_percentile).",
        parser=dataset_spec,
        show_default="none: the random-codebook null only",
    ),
    batch_size: int = BATCH,
    json_out: bool = JSON,
) -> None:
    """Validity of a dataset: its own codebook's distance to the reference, with two nulls.

    ``batch.z_score`` is against i.i.d. random codebooks (every real input beats it, in- or
    out-of-distribution); with --id-dataset, ``batch.id_percentile`` places the distance among
    held-out in-distribution batches of the same size (near 100: out of distribution).
    """
    output.set_json_mode(json_out)
    from dataclasses import asdict

    from geolip.data import open_dataset
    from geolip.downstream.ood import ValidityScorer

    producer, cb = _load(source, codebook)
    data = open_dataset(dataset)
    engine = ValidityScorer(producer, cb, null_trials=null_trials, batch_size=batch_size)
    if id_dataset:
        with output.status("distances of in-distribution batches"):
            engine = engine.calibrate_batches(open_dataset(id_dataset), len(data))
    with output.status("input codebook, alignment and null"):
        validity = engine.validity_score(data)
        distances = engine.image_distances(data)
    q = distances.quantile(distances.new_tensor([0.05, 0.5, 0.95])).tolist()
    doc: dict[str, Any] = {
        "dataset": dataset,
        "id_dataset": id_dataset or None,
        "batch": asdict(validity),
        "per_image": {"mean": distances.mean().item(), "p5": q[0], "median": q[1], "p95": q[2]},
    }
    if per_image:
        doc["distances"] = distances.tolist()
    output.emit(doc, "validity")


@ood_app.command("eval")
def ood_eval(
    source: str = PRODUCER,
    codebook: Path = CODEBOOK,
    id_spec: str = typer.Option(
        ..., "--id", help="In-distribution dataset spec (split in two).", parser=dataset_spec
    ),
    ood: list[str] = typer.Option(
        ..., "--ood", help="OOD dataset spec (repeat).", parser=dataset_spec
    ),
    fit_fraction: float = typer.Option(0.5, "--fit-fraction", min=0.05, max=0.95),
    feature: str = typer.Option("mean", "--feature", help="Features of Mahalanobis and kNN."),
    k: int = typer.Option(5, "--k", min=1, help="kNN neighbour."),
    batch_size: int = BATCH,
    cache_dir: Path | None = CACHE,
    no_cache: bool = NO_CACHE,
    json_out: bool = JSON,
) -> None:
    """AUROC, FPR@95, AUPR-in/out of the validity score and three baselines (OOD positive)."""
    output.set_json_mode(json_out)
    from geolip.data import open_dataset
    from geolip.downstream.ood_eval import OOD_METHODS, evaluate_ood, fit_detectors

    producer, cb = _load(source, codebook)
    in_dist = open_dataset(id_spec)
    id_fit, id_test = in_dist.split(max(1, round(fit_fraction * len(in_dist))))
    ood_sets = {spec: open_dataset(spec) for spec in ood}
    with output.status("fitting detectors and scoring"):
        detectors = fit_detectors(
            producer,
            cb,
            id_fit,
            feature=feature,  # type: ignore[arg-type]
            k=k,
            batch_size=batch_size,
            cache_dir=_cache(cache_dir, no_cache),
        )
        report = evaluate_ood(detectors, id_test, ood_sets)
    output.emit_rows(
        ["OOD set", "method", "AUROC", "FPR@95", "AUPR-in", "AUPR-out"],
        [
            [name, m, f"{r.auroc:.4f}", f"{r.fpr95:.4f}", f"{r.aupr_in:.4f}", f"{r.aupr_out:.4f}"]
            for name, per in report.items()
            for m, r in per.items()
        ],
        f"in-distribution {id_spec}: fit {len(id_fit)}, test {len(id_test)}; OOD positive",
    )
    if json_out:
        output.emit(
            {
                "id": id_spec,
                "n_fit": len(id_fit),
                "n_test": len(id_test),
                "native_mse": detectors.mse.floor,
                "methods": list(OOD_METHODS),
                "results": {
                    n: {m: r.as_dict() for m, r in per.items()} for n, per in report.items()
                },
            },
            "ood evaluation",
        )
