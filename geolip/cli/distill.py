"""``geolip distill``: a sphere-solver student distilled from an image expert (OMEGA §5a),
probed beside its teacher at two resolutions (docs/crossmodal.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from geolip.cli import output
from geolip.cli.crossmodal import SEEDS, TEST_FRACTION, mean_pm, parse_seeds
from geolip.cli.options import FORCE, JSON, dataset_spec, options_checked
from geolip.cli.out_path import claim_output
from geolip.errors import InvalidOptionError


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise InvalidOptionError(
            "--eval-sizes", f"expected integers like 32,64, got {text!r}"
        ) from None
    if not sizes:
        raise InvalidOptionError("--eval-sizes", "needs at least one size")
    return sizes


def distill(
    dataset: str = typer.Option(
        "shapes:n=600", "--dataset", help="Dataset spec without size=.", parser=dataset_spec
    ),
    teacher: str = typer.Option(
        "effnet", "--teacher", help="effnet (seen at each image's own size), hog or cnn."
    ),
    student: str = typer.Option(
        "pretrained:h2-gaussian", "--student", help="Initial sphere-solver (copied)."
    ),
    train_size: int = typer.Option(32, "--train-size", help="Resolution of distillation."),
    eval_sizes: str = typer.Option("32,64", "--eval-sizes", help="Probe resolutions."),
    steps: int = typer.Option(300, "--steps", help="Optimiser steps per student."),
    batch_size: int = typer.Option(32, "--batch-size"),
    lr: float = typer.Option(3e-4, "--lr"),
    match_weight: float = typer.Option(1.0, "--match-weight", help="Weight of feature matching."),
    seeds: str = SEEDS,
    test_fraction: float = TEST_FRACTION,
    out: Path | None = typer.Option(
        None, "--out", help="Folder for students and results.", show_default="report only"
    ),
    force: bool = FORCE,
    json_out: bool = JSON,
) -> None:
    """Distil an image expert into a sphere-solver (reconstruction + feature matching) and
    compare linear-probe accuracy of student, reconstruction-only control, initial producer and
    teacher at each resolution."""
    output.set_json_mode(json_out)
    claim_output(out, kind="folder", force=force)
    from geolip.data.specs import DatasetSpec
    from geolip.downstream.distill import DistillConfig
    from geolip.downstream.distill_study import (
        DISTILL_KIND,
        SUBJECTS,
        DistillSettings,
        distill_document,
        run_distill_study,
    )
    from geolip.downstream.expert_registry import make_expert
    from geolip.downstream.experts import EfficientNetImage
    from geolip.downstream.result_files import save_result
    from geolip.producers.loading import load_producer

    if teacher not in ("effnet", "hog", "cnn"):
        raise InvalidOptionError("--teacher", f"effnet, hog or cnn, got {teacher!r}")
    base = DatasetSpec.parse(dataset)
    if "size=" in dataset:
        raise InvalidOptionError(
            "--dataset", "leave size= out: --train-size and --eval-sizes set it"
        )
    with options_checked({"DistillConfig": lambda f: f"--{f.replace('_', '-')}"}):
        settings = DistillSettings(
            seeds=parse_seeds(seeds),
            train_size=train_size,
            eval_sizes=_sizes(eval_sizes),
            test_fraction=test_fraction,
            distill=DistillConfig(
                steps=steps, batch_size=batch_size, lr=lr, match_weight=match_weight
            ),
        )

    def open_at(size: int) -> Any:
        return DatasetSpec.build(base.name, {**base.options.model_dump(), "size": size}).open()

    with output.status("loading the student and the teacher"):
        initial = load_producer(student)
        expert = EfficientNetImage(size=None) if teacher == "effnet" else make_expert(teacher)
    document, tensors = run_distill_study(open_at, initial, expert, settings, progress=not json_out)
    document = distill_document(document, dataset, student)
    if out is not None:
        save_result(out, DISTILL_KIND, tensors, document)
        output.log(f"wrote {out}")
    summary = document["summary"]
    output.emit_rows(
        ["size", "student", "control (recon only)", "initial", f"teacher ({teacher})"],
        [[size, *(mean_pm(s[n]) for n in SUBJECTS)] for size, s in summary.items()],
        f"linear-probe accuracy on held-out {dataset} (distilled at {train_size}), mean ± std "
        f"over seeds {list(settings.seeds)}",
    )
    if json_out:
        output.emit({"out": None if out is None else str(out), **document}, "distill")
