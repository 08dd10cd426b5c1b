"""``geolip train ...``, ``geolip quickstart`` and ``geolip codebook extract``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from typer.core import TyperCommand

from geolip.cli import output
from geolip.cli.options import FORCE, JSON, command_group, json_object, options_checked
from geolip.cli.out_path import claim_output
from geolip.errors import InvalidOptionError, TrainingInterrupted

EXIT_INTERRUPTED = 130

train_app = command_group("Train producers (models that emit codebooks).")


PRESET_DEFAULT = "the preset's"


class PresetRecipesHelp(TyperCommand):
    """Help that ends with every preset's recipe: the defaults of the training options.

    Built only when help is shown, so parsing the command line never imports torch."""

    def format_epilog(self, ctx: Any, formatter: Any) -> None:
        from geolip.producers.presets import PRESETS, train_config

        rows = []
        for name, preset in PRESETS.items():
            c = train_config(name)
            noises = "all 16 noises" if len(c.noises) == 16 else ", ".join(c.noises)
            rows.append(
                (
                    name,
                    f"--epochs {c.epochs} --steps-per-epoch {c.steps_per_epoch} "
                    f"--batch-size {c.batch_size} --img-size {c.img_size} --lr {c.lr:g} "
                    f"--save-every {c.save_every}; {noises}. {preset.note}",
                )
            )
        with formatter.section("Presets (each option's default is its preset's value)"):
            formatter.write_dl(rows)


def _check_preset(name: str) -> None:
    from geolip.producers.presets import PRESETS

    if name not in PRESETS:
        known = ", ".join(PRESETS)
        raise InvalidOptionError("--preset", f"unknown preset {name!r}; known: {known}")


@train_app.command("sphere-solver", cls=PresetRecipesHelp)
def train_sphere_solver(
    preset: str = typer.Option(..., "--preset", help="A registered preset (listed below)."),
    out: Path = typer.Option(..., "--out", help="Run folder: checkpoints latest/ and best/."),
    epochs: int | None = typer.Option(None, "--epochs", min=1, show_default=PRESET_DEFAULT),
    steps_per_epoch: int | None = typer.Option(
        None, "--steps-per-epoch", min=1, show_default=PRESET_DEFAULT
    ),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1, show_default=PRESET_DEFAULT),
    img_size: int | None = typer.Option(
        None, "--img-size", min=1, help="Training image side (px).", show_default=PRESET_DEFAULT
    ),
    lr: float | None = typer.Option(
        None, "--lr", help="Peak learning rate (> 0).", show_default=PRESET_DEFAULT
    ),
    save_every: int | None = typer.Option(
        None,
        "--save-every",
        min=0,
        help="Steps between rolling checkpoints (0: at epoch ends only).",
        show_default=PRESET_DEFAULT,
    ),
    seed: int | None = typer.Option(
        None, "--seed", help="On --resume: the checkpoint's.", show_default="0"
    ),
    noises: str | None = typer.Option(
        None,
        "--noises",
        help="Comma-separated training noise names (geolip data list: noise).",
        show_default=PRESET_DEFAULT,
    ),
    model_json: str = typer.Option(
        "{}", "--model", help="JSON overrides of the model config, e.g. '{\"depth\": 2}'."
    ),
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
    _check_preset(preset)
    model_overrides = json_object("--model", model_json)
    claim_output(out, kind="folder", force=force, resume=resume)
    from geolip.producers.presets import get_preset, train_preset

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
    model_config = type(get_preset(preset).model).__name__
    try:
        with options_checked({model_config: lambda field: "--model"}):
            trainer = train_preset(
                preset,
                out,
                seed=seed,
                device=device,
                resume=resume,
                progress=not json_out,
                model_overrides=model_overrides,
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
    force: bool = FORCE,
    json_out: bool = JSON,
) -> None:
    """Extract a producer's codebook beside its null (random axes) and the controls."""
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
