"""``geolip train ...``, ``geolip quickstart`` and ``geolip codebook extract``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from geolip.cli import output
from geolip.cli.out_path import claim_output
from geolip.errors import TrainingInterrupted

EXIT_INTERRUPTED = 130

train_app = typer.Typer(help="Train producers (models that emit codebooks).", no_args_is_help=True)
JSON = typer.Option(False, "--json", help="Print exactly one JSON document on stdout.")


@train_app.command("sphere-solver")
def train_sphere_solver(
    preset: str = typer.Option(
        ..., "--preset", help="fresnel, freckles, h2, h2a or p_class (any registered preset)."
    ),
    out: Path = typer.Option(..., "--out", help="Run folder: checkpoints latest/ and best/."),
    epochs: int | None = typer.Option(None, "--epochs", min=1),
    steps_per_epoch: int | None = typer.Option(None, "--steps-per-epoch", min=1),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1),
    img_size: int | None = typer.Option(None, "--img-size", min=1),
    lr: float | None = typer.Option(None, "--lr"),
    save_every: int | None = typer.Option(None, "--save-every", min=0, help="Steps."),
    seed: int | None = typer.Option(
        None, "--seed", help="Default 0 (on --resume: the checkpoint's)."
    ),
    noises: str | None = typer.Option(None, "--noises", help="Comma-separated noise names."),
    model_json: str = typer.Option("{}", "--model", help="JSON overrides of the model config."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1, ..."),
    resume: bool = typer.Option(
        False,
        "--resume",
        help="Continue from OUT/latest exactly (a larger --epochs extends the run).",
    ),
    force: bool = typer.Option(
        False, "--force", help="Start over in an OUT that already holds a run."
    ),
    json_out: bool = JSON,
) -> None:
    """Train a sphere-solver on the noise curriculum (torchrun-ready: DDP when WORLD_SIZE>1).

    An OUT that already holds files is refused unless --resume (continue) or --force (start
    over). Ctrl-C saves OUT/latest at the current step and prints the command that resumes."""
    output.set_json_mode(json_out)
    claim_output(out, kind="folder", force=force, resume=resume)
    from geolip.producers.presets import train_preset

    overrides: dict[str, Any] = {
        k: v
        for k, v in {
            "epochs": epochs,
            "steps_per_epoch": steps_per_epoch,
            "batch_size": batch_size,
            "img_size": img_size,
            "lr": lr,
            "save_every": save_every,
        }.items()
        if v is not None
    }
    if noises:
        overrides["noises"] = tuple(n.strip() for n in noises.split(","))
    try:
        trainer = train_preset(
            preset,
            out,
            seed=seed,
            device=device,
            resume=resume,
            progress=not json_out,
            model_overrides=json.loads(model_json),
            announce=output.log,
            **overrides,
        )
    except TrainingInterrupted as stop:
        command = f"geolip train sphere-solver --preset {preset} --out {out} --resume"
        if device != "cpu":
            command += f" --device {device}"
        output.fail(
            TrainingInterrupted(
                f"interrupted at step {stop.step} (epoch {stop.epoch}); saved {stop.path}; "
                f"resume with: {command}",
                stop.step,
                stop.epoch,
                stop.path,
            ),
            EXIT_INTERRUPTED,
        )
    if trainer.rank == 0:
        _emit_training(trainer, out)


def _emit_training(trainer: Any, out: Path) -> None:
    final = trainer.history[-1] if trainer.history else trainer.evaluate()
    doc = {
        "out": str(out),
        "step": trainer.step,
        "epoch": trainer.epoch,
        "best_mse": trainer.best_mse,
        "final": final,
    }
    output.emit(doc, "training")


def extract(
    source: str = typer.Argument(..., help="Checkpoint folder, upstream file or pretrained:NAME."),
    out: Path = typer.Option(..., "--out", help="Artifact folder to write."),
    calibration: str = typer.Option("sixteen_noise", "--calibration"),
    n: int = typer.Option(64, "--n", min=1, help="Calibration images (exactly n)."),
    size: int = typer.Option(64, "--size", min=1, help="Calibration image size."),
    seed: int = typer.Option(0, "--seed"),
    aggregation: str = typer.Option("mean", "--aggregation", help="mean or median."),
    null_trials: int = typer.Option(300, "--null-trials", min=10),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing --out."),
    json_out: bool = JSON,
) -> None:
    """Extract a producer's codebook with the i.i.d. null and both controls."""
    output.set_json_mode(json_out)
    claim_output(out, kind="artifact", force=force)
    from geolip.cli.codebook import summary
    from geolip.producers.extract import extract_codebook
    from geolip.producers.loading import load_producer, require_producer

    producer = require_producer(load_producer(source), source)
    with output.status("extracting: calibration, null model, untrained and shuffled controls"):
        cb = extract_codebook(
            producer,
            calibration,
            n=n,
            seed=seed,
            size=size,
            aggregation=aggregation,
            null_trials=null_trials,
        )  # type: ignore[arg-type]
    cb.save(out)
    output.log(f"wrote {out}")
    output.emit_summary(summary(cb, path=out))


def quickstart(
    out: Path = typer.Option(Path("geolip-quickstart"), "--out", help="Output folder."),
    seed: int = typer.Option(0, "--seed"),
    force: bool = typer.Option(
        False, "--force", help="Replace what an earlier quickstart wrote in a non-empty --out."
    ),
    json_out: bool = JSON,
) -> None:
    """Train a small sphere-solver on 16 noises, extract its codebook beside three nulls,
    save the artifact and a picture (≤ 3 minutes on 2 CPU cores)."""
    output.set_json_mode(json_out)
    claim_output(out, kind="folder", force=force)
    from geolip.cli.codebook import summary
    from geolip.producers.quickstart import run_quickstart

    result = run_quickstart(out, seed=seed, progress=not json_out, force=force)
    doc = summary(result.codebook, path=result.codebook_path)
    doc["picture"] = str(result.picture_path)
    doc["checkpoint"] = str(result.checkpoint_path)
    doc["validation_mse"] = [h["mse"] for h in result.history]
    output.emit_summary(doc)
    output.log(
        f"codebook: {result.codebook_path}  picture: {result.picture_path}  "
        f"checkpoint: {result.checkpoint_path}"
    )
