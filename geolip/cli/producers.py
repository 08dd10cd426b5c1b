"""``geolip train ...`` and ``geolip quickstart``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from typer.core import TyperCommand

from geolip.cli import output
from geolip.cli.options import (
    DEVICE,
    JSON,
    command_group,
    dataset_spec,
    json_object,
    options_checked,
    torch_device,
)
from geolip.cli.out_path import claim_output
from geolip.errors import InvalidOptionError, TrainingInterrupted

EXIT_INTERRUPTED = 130

train_app = command_group("Train producers (models that emit codebooks).")


PRESET_DEFAULT = "the preset's"

# the options every ``geolip train`` command shares
RUN_OUT = typer.Option(..., "--out", help="Run folder: checkpoints latest/ and best/.")
EPOCHS = typer.Option(None, "--epochs", min=1, show_default=PRESET_DEFAULT)
STEPS_PER_EPOCH = typer.Option(None, "--steps-per-epoch", min=1, show_default=PRESET_DEFAULT)
BATCH_SIZE = typer.Option(None, "--batch-size", min=1, show_default=PRESET_DEFAULT)
LR = typer.Option(None, "--lr", help="Peak learning rate (> 0).", show_default=PRESET_DEFAULT)
SAVE_EVERY = typer.Option(
    None,
    "--save-every",
    min=0,
    help="Steps between rolling checkpoints (0: at epoch ends only).",
    show_default=PRESET_DEFAULT,
)
SEED = typer.Option(None, "--seed", help="On --resume: the checkpoint's.", show_default="0")
RESUME = typer.Option(
    False, "--resume", help="Continue from OUT/latest exactly (a larger --epochs extends the run)."
)
START_OVER = typer.Option(False, "--force", help="Start over in an OUT that already holds a run.")
NOISES = typer.Option(
    None,
    "--noises",
    help="Comma-separated training noise names (geolip data list: noise).",
    show_default=PRESET_DEFAULT,
)


class PresetRecipesHelp(TyperCommand):
    """Help that ends with the recipe of every preset of the command's model ``family``: the
    defaults of the training options.

    Built only when help is shown, so parsing the command line never imports torch."""

    family = "SphereSolver"

    def format_epilog(self, ctx: Any, formatter: Any) -> None:
        from geolip.producers.presets import PRESETS, train_config

        rows = []
        for name, preset in PRESETS.items():
            if preset.model_class.__name__ != self.family:
                continue
            c = train_config(name)
            if c.dataset is not None:
                noises = f"--dataset {c.dataset}"
            else:
                noises = "all 16 noises" if len(c.noises) == 16 else ", ".join(c.noises)
            rows.append(
                (
                    name,
                    f"--epochs {c.epochs} --steps-per-epoch {c.steps_per_epoch} "
                    f"--batch-size {c.batch_size} "
                    + (f"--img-size {c.img_size} " if c.img_size is not None else "")
                    + f"--lr {c.lr:g} "
                    + (
                        f"--lr-schedule {c.lr_schedule} --warmup-steps {c.warmup_steps} "
                        if c.lr_schedule != "cosine-epochs"
                        else ""
                    )
                    + f"--save-every {c.save_every}; {noises}. {preset.note}",
                )
            )
        with formatter.section("Presets (each option's default is its preset's value)"):
            formatter.write_dl(rows)


class GLFMRecipesHelp(PresetRecipesHelp):
    """The GLFM presets' recipes."""

    family = "GLFM"


class SVAETransformerRecipesHelp(PresetRecipesHelp):
    """The SVAE-transformer presets' recipes."""

    family = "SVAETransformer"


class CVBatteryRecipesHelp(PresetRecipesHelp):
    """The CV-battery presets' recipes."""

    family = "CVBattery"


TRAIN_COMMAND = {
    "SphereSolver": "sphere-solver",
    "GLFM": "glfm",
    "SVAETransformer": "svae-transformer",
    "CVBattery": "cv-battery",
}
"""The ``geolip train`` command of each model family."""


def _check_preset(name: str, family: str) -> None:
    """Refuse a preset that is unknown or of another model family than the command trains."""
    from geolip.producers.presets import PRESETS

    preset = PRESETS.get(name)
    if preset is None:
        known = ", ".join(k for k, p in PRESETS.items() if p.model_class.__name__ == family)
        raise InvalidOptionError("--preset", f"unknown preset {name!r}; known: {known}")
    other = preset.model_class.__name__
    if other != family:
        where = (
            f"; train it with `geolip train {TRAIN_COMMAND[other]}`"
            if other in TRAIN_COMMAND
            else ""
        )
        raise InvalidOptionError("--preset", f"preset {name!r} is a {other}, not a {family}{where}")


@train_app.command("sphere-solver", cls=PresetRecipesHelp)
def train_sphere_solver(
    preset: str = typer.Option(..., "--preset", help="A registered preset (listed below)."),
    out: Path = RUN_OUT,
    epochs: int | None = EPOCHS,
    steps_per_epoch: int | None = STEPS_PER_EPOCH,
    batch_size: int | None = BATCH_SIZE,
    img_size: int | None = typer.Option(
        None, "--img-size", min=1, help="Training image side (px).", show_default=PRESET_DEFAULT
    ),
    lr: float | None = LR,
    lr_schedule: str | None = typer.Option(
        None,
        "--lr-schedule",
        help="cosine-epochs (stepped at epoch ends) or warmup-cosine (every step: linear "
        "warm-up, then a cosine to 0 at the last step).",
        show_default=PRESET_DEFAULT,
    ),
    warmup_steps: int | None = typer.Option(
        None,
        "--warmup-steps",
        min=0,
        help="Warm-up steps of warmup-cosine.",
        show_default=PRESET_DEFAULT,
    ),
    save_every: int | None = SAVE_EVERY,
    seed: int | None = SEED,
    noises: str | None = NOISES,
    model_json: str = typer.Option(
        "{}", "--model", help="JSON overrides of the model config, e.g. '{\"depth\": 2}'."
    ),
    device: str = DEVICE,
    resume: bool = RESUME,
    force: bool = START_OVER,
    json_out: bool = JSON,
) -> None:
    """Train a sphere-solver on the noise curriculum (torchrun-ready: DDP when WORLD_SIZE>1).

    An OUT that already holds files is refused unless --resume (continue) or --force (start
    over). Ctrl-C saves OUT/latest at the current step and prints the command that resumes."""
    output.set_json_mode(json_out)
    _check_preset(preset, "SphereSolver")
    overrides = _given(
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        batch_size=batch_size,
        img_size=img_size,
        lr=lr,
        lr_schedule=lr_schedule,
        warmup_steps=warmup_steps,
        save_every=save_every,
    )
    overrides.update(_noises(noises))
    _train(
        "sphere-solver", preset, out, overrides, model_json, seed, device, resume, force, json_out
    )


def _noises(noises: str | None) -> dict[str, tuple[str, ...]]:
    """The ``noises`` override of a ``--noises a,b`` option; none when it is not given."""
    return {"noises": tuple(n.strip() for n in noises.split(","))} if noises else {}


def _given(**options: Any) -> dict[str, Any]:
    """The training options given on the command line (those not None)."""
    return {k: v for k, v in options.items() if v is not None}


def _train(
    command: str,
    preset: str,
    out: Path,
    overrides: dict[str, Any],
    model_json: str,
    seed: int | None,
    device: str,
    resume: bool,
    force: bool,
    json_out: bool,
    check_model: Any = None,
) -> None:
    """Claim OUT, train ``preset`` into it and print the result; Ctrl-C prints the command
    that resumes (``geolip train COMMAND ... --resume``) and exits 130. ``check_model`` is
    called with the model config the run would build (not on --resume) before OUT is claimed."""
    model_overrides = json_object("--model", model_json)
    device = str(torch_device(device))
    from geolip.producers.presets import get_preset, train_preset

    model_config = type(get_preset(preset).model).__name__
    option_for = {model_config: lambda field: "--model"}
    if check_model is not None and not resume:
        base = get_preset(preset).model
        with options_checked(option_for):
            check_model(type(base)(**{**base.model_dump(), **model_overrides}))
    claim_output(out, kind="folder", force=force, resume=resume)
    try:
        with options_checked(option_for):
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
        resume_with = f"geolip train {command} --preset {preset} --out {out} --resume"
        if device != "cpu":
            resume_with += f" --device {device}"
        output.fail(
            TrainingInterrupted(
                f"interrupted at step {stop.step} (epoch {stop.epoch}); saved {stop.path}; "
                f"resume with: {resume_with}",
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


@train_app.command("glfm", cls=GLFMRecipesHelp)
def train_glfm(
    preset: str = typer.Option(..., "--preset", help="A GLFM preset (listed below)."),
    out: Path = RUN_OUT,
    epochs: int | None = EPOCHS,
    steps_per_epoch: int | None = STEPS_PER_EPOCH,
    batch_size: int | None = BATCH_SIZE,
    img_size: int | None = typer.Option(
        None,
        "--img-size",
        min=1,
        help="Training image side (px); the model's image_size must match.",
        show_default=PRESET_DEFAULT,
    ),
    lr: float | None = LR,
    save_every: int | None = SAVE_EVERY,
    eval_images: int | None = typer.Option(
        None,
        "--eval-per-class",
        min=1,
        help="Held-out validation images per class (the dataset's last ones).",
        show_default=PRESET_DEFAULT,
    ),
    seed: int | None = SEED,
    dataset: str | None = typer.Option(
        None,
        "--dataset",
        help="Labelled training images, a dataset SPEC (geolip data list).",
        parser=dataset_spec,
        show_default=PRESET_DEFAULT,
    ),
    model_json: str = typer.Option(
        "{}", "--model", help="JSON overrides of the model config, e.g. '{\"n_anchors\": 64}'."
    ),
    device: str = DEVICE,
    resume: bool = RESUME,
    force: bool = START_OVER,
    json_out: bool = JSON,
) -> None:
    """Train a GLFM (class-conditional flow matching through the constellation bottleneck)
    on labelled images; torchrun-ready. Each epoch logs the validation velocity MSE and the
    anchor-drift histogram with the share of anchors within 0.05 rad of 0.29154.

    An OUT that already holds files is refused unless --resume (continue) or --force (start
    over). Ctrl-C saves OUT/latest at the current step and prints the command that resumes."""
    output.set_json_mode(json_out)
    _check_preset(preset, "GLFM")
    overrides = _given(
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        batch_size=batch_size,
        img_size=img_size,
        lr=lr,
        save_every=save_every,
        eval_per_type=eval_images,
        dataset=dataset,
    )

    def fits_dataset(config: Any) -> None:
        from geolip.data.specs import open_dataset
        from geolip.producers.presets import train_config

        recipe = train_config(preset, **overrides)
        if recipe.img_size != config.image_size:
            raise InvalidOptionError(
                "--img-size",
                f"{recipe.img_size} differs from the model's image_size "
                f"{config.image_size}; set both (--model '{{\"image_size\": N}}')",
            )
        images = open_dataset(recipe.dataset)
        problem = config.dataset_mismatch(images.channels, len(images.classes))
        if problem is not None:
            raise InvalidOptionError("--dataset", f"{recipe.dataset!r}: {problem}")

    _train(
        "glfm",
        preset,
        out,
        overrides,
        model_json,
        seed,
        device,
        resume,
        force,
        json_out,
        check_model=fits_dataset,
    )


DATASET = typer.Option(
    None,
    "--dataset",
    help="What the autoencoder reconstructs, a dataset SPEC (geolip data list).",
    parser=dataset_spec,
    show_default=PRESET_DEFAULT,
)
EVAL_ITEMS = typer.Option(
    None,
    "--eval-per-class",
    min=1,
    help="Held-out validation items per class of --dataset (its last ones).",
    show_default=PRESET_DEFAULT,
)


def _dataset_fits(preset: str, overrides: dict[str, Any]) -> Any:
    """A ``check_model`` refusing a recipe dataset the model config cannot take."""

    def check(config: Any) -> None:
        from geolip.data.specs import open_dataset
        from geolip.producers.presets import train_config

        recipe = train_config(preset, **overrides)
        if recipe.dataset is None:
            return
        items = open_dataset(recipe.dataset)
        problem = config.dataset_mismatch(items.channels, items.size)
        if problem is not None:
            raise InvalidOptionError("--dataset", f"{recipe.dataset!r}: {problem}")

    return check


@train_app.command("svae-transformer", cls=SVAETransformerRecipesHelp)
def train_svae_transformer(
    preset: str = typer.Option(..., "--preset", help="An SVAE-transformer preset (listed below)."),
    out: Path = RUN_OUT,
    epochs: int | None = EPOCHS,
    steps_per_epoch: int | None = STEPS_PER_EPOCH,
    batch_size: int | None = BATCH_SIZE,
    img_size: int | None = typer.Option(
        None,
        "--img-size",
        min=1,
        help="Resize the dataset's images to this side (token sequences are never resized).",
        show_default=PRESET_DEFAULT,
    ),
    lr: float | None = LR,
    save_every: int | None = SAVE_EVERY,
    eval_items: int | None = EVAL_ITEMS,
    seed: int | None = SEED,
    dataset: str | None = DATASET,
    model_json: str = typer.Option(
        "{}", "--model", help="JSON overrides of the model config, e.g. '{\"D_lens\": 32}'."
    ),
    device: str = DEVICE,
    resume: bool = RESUME,
    force: bool = START_OVER,
    json_out: bool = JSON,
) -> None:
    """Train an SVAE-transformer (a sphere-solver battery under a fixed isometric lens, a
    spectral-alpha attention stack and a geometric decoder) to reconstruct image patches or
    feature tokens; torchrun-ready. Battery and shell train in separate optimiser groups;
    each epoch logs the reconstruction cosine, the rigidity deviation beside its i.i.d. null
    and every α.

    An OUT that already holds files is refused unless --resume (continue) or --force (start
    over). Ctrl-C saves OUT/latest at the current step and prints the command that resumes."""
    output.set_json_mode(json_out)
    _check_preset(preset, "SVAETransformer")
    overrides = _given(
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        batch_size=batch_size,
        img_size=img_size,
        lr=lr,
        save_every=save_every,
        eval_per_type=eval_items,
        dataset=dataset,
    )
    _train(
        "svae-transformer",
        preset,
        out,
        overrides,
        model_json,
        seed,
        device,
        resume,
        force,
        json_out,
        check_model=_dataset_fits(preset, overrides),
    )


@train_app.command("cv-battery", cls=CVBatteryRecipesHelp)
def train_cv_battery(
    preset: str = typer.Option(..., "--preset", help="A CV-battery preset (listed below)."),
    out: Path = RUN_OUT,
    epochs: int | None = EPOCHS,
    steps_per_epoch: int | None = STEPS_PER_EPOCH,
    batch_size: int | None = BATCH_SIZE,
    img_size: int | None = typer.Option(
        None, "--img-size", min=1, help="Training image side (px).", show_default=PRESET_DEFAULT
    ),
    lr: float | None = LR,
    save_every: int | None = SAVE_EVERY,
    seed: int | None = SEED,
    noises: str | None = NOISES,
    dataset: str | None = DATASET,
    model_json: str = typer.Option(
        "{}", "--model", help="JSON overrides of the model config, e.g. '{\"n_blocks\": 8}'."
    ),
    device: str = DEVICE,
    resume: bool = RESUME,
    force: bool = START_OVER,
    json_out: bool = JSON,
) -> None:
    """Train a CV-battery autoencoder (a VAE over many small battery blocks with a
    differentiable Cayley–Menger CV loss in two phases) on the noise curriculum or a dataset;
    torchrun-ready. Each epoch logs the CV reached beside its target and the uniform-row CV.

    An OUT that already holds files is refused unless --resume (continue) or --force (start
    over). Ctrl-C saves OUT/latest at the current step and prints the command that resumes."""
    output.set_json_mode(json_out)
    _check_preset(preset, "CVBattery")
    overrides = _given(
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        batch_size=batch_size,
        img_size=img_size,
        lr=lr,
        save_every=save_every,
        dataset=dataset,
    )
    overrides.update(_noises(noises))
    _train(
        "cv-battery",
        preset,
        out,
        overrides,
        model_json,
        seed,
        device,
        resume,
        force,
        json_out,
        check_model=_dataset_fits(preset, overrides),
    )


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
