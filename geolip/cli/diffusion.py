"""``geolip diffusion train|sample``: discrete diffusion over a tokenizer's axis tokens
(:mod:`geolip.downstream.diffusion`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from geolip.cli import output
from geolip.cli.options import (
    DEVICE,
    FORCE,
    JSON,
    command_group,
    dataset_spec,
    options_checked,
    torch_device,
)
from geolip.cli.out_path import claim_output
from geolip.cli.tokenize import require_suffix, size_option
from geolip.errors import InvalidOptionError, TrainingInterrupted

EXIT_INTERRUPTED = 130

diffusion_app = command_group("Discrete diffusion over axis tokens: train a denoiser, sample.")

MODEL = typer.Argument(..., help="A diffusion model folder written by 'geolip diffusion train'.")


@diffusion_app.command()
def train(
    tokenizer: Path = typer.Argument(
        ..., help="A tokenizer folder written by 'geolip tokenize build'."
    ),
    dataset: list[str] = typer.Option(
        ...,
        "--dataset",
        help="Training images, e.g. digits:size=64; repeat for the same images at other sizes.",
        parser=dataset_spec,
    ),
    out: Path = typer.Option(..., "--out", help="Model folder (also the checkpoint)."),
    steps: int = typer.Option(2000, "--steps", min=1, help="Optimizer steps in all."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Sequences per step."),
    lr: float = typer.Option(3e-4, "--lr", help="AdamW learning rate after warm-up."),
    schedule: str = typer.Option(
        "cosine", "--schedule", help="Masking schedule: cosine, linear or arccos."
    ),
    unconditional: bool = typer.Option(
        False, "--unconditional", help="Ignore the dataset's classes."
    ),
    dim: int = typer.Option(128, "--dim", min=1, help="Transformer width."),
    depth: int = typer.Option(4, "--depth", min=1, help="Transformer layers."),
    heads: int = typer.Option(4, "--heads", min=1, help="Attention heads (divide --dim)."),
    checkpoint_every: int = typer.Option(
        500, "--checkpoint-every", min=0, help="Steps between checkpoints (0: at the end)."
    ),
    seed: int = typer.Option(0, "--seed", help="Initial weights, batches and masks."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run saved in --out."),
    device: str = DEVICE,
    force: bool = FORCE,
    json_out: bool = JSON,
) -> None:
    """Train a denoiser on the axis tokens of a dataset (one model on several sizes when
    --dataset is repeated); Ctrl-C saves the step reached."""
    output.set_json_mode(json_out)
    from geolip.downstream.diffusion_train import DiffusionTrainConfig

    with options_checked():
        config = DiffusionTrainConfig(
            steps=steps,
            batch_size=batch_size,
            lr=lr,
            schedule=schedule,  # type: ignore[arg-type]
            conditional=not unconditional,
            dim=dim,
            depth=depth,
            heads=heads,
            seed=seed,
            checkpoint_every=checkpoint_every,
        )
    if dim % heads:
        raise InvalidOptionError("--heads", f"{heads} does not divide --dim {dim}")
    where = torch_device(device)
    claim_output(out, kind="folder", force=force, resume=resume)
    from geolip.data import open_dataset
    from geolip.downstream.diffusion_train import train_diffusion
    from geolip.downstream.tokenizer import GeolipImageTokenizer

    tok = GeolipImageTokenizer.from_pretrained(tokenizer)
    tok.producer.to(where)  # tokenize where the model trains
    data = [(spec, open_dataset(spec)) for spec in dataset]
    try:
        run = train_diffusion(
            tok,
            [d for _, d in data],
            out,
            config,
            resume=resume,
            progress=not json_out,
            device=where,
        )
    except TrainingInterrupted as stop:
        specs = " ".join(f"--dataset {spec}" for spec in dataset)
        again = f"geolip diffusion train {tokenizer} {specs} --out {out} --resume"
        if device != "cpu":
            again += f" --device {device}"
        output.fail(
            TrainingInterrupted(
                f"interrupted at step {stop.step}; saved {out}; resume with: {again}",
                stop.step,
                0,
                stop.path,
            ),
            EXIT_INTERRUPTED,
        )
    output.log(f"wrote {out}")
    losses = run.losses
    sizes = [
        {
            "dataset": spec,
            "size": list(d.size),
            "images": len(d),
            "tokens_per_image": tok.tokens_per_image(d.size),
        }
        for spec, d in data
    ]
    doc = {
        "out": str(out),
        **next(s for s in sizes if tuple(s["size"]) == run.model.train_size),
        "sizes": sizes,
        "step": run.step,
        "device": str(where),
        "classes": list(run.model.classes),
        "loss_first": losses[0] if losses else None,
        "loss_last_50": sum(losses[-50:]) / len(losses[-50:]) if losses else None,
        "config": config.model_dump(mode="json"),
    }
    output.emit(doc, "diffusion model")


@diffusion_app.command()
def sample(
    model: Path = MODEL,
    n: int = typer.Option(16, "--n", min=1, help="Samples to draw."),
    size: str | None = typer.Option(
        None,
        "--size",
        help="Image size S or H,W (longer sequences for larger images).",
        show_default="the training size",
    ),
    label: str | None = typer.Option(
        None, "--class", help="Class name or index for every sample.", show_default="none"
    ),
    seed: int = typer.Option(0, "--seed", help="The same seed gives the same tokens."),
    steps: int = typer.Option(12, "--steps", min=1, help="Denoiser calls (unmasking steps)."),
    temperature: float = typer.Option(1.0, "--temperature", min=1e-6, help="Token draws."),
    guidance: float = typer.Option(
        0.0, "--guidance", min=0.0, help="Classifier-free guidance weight (with --class)."
    ),
    out: Path | None = typer.Option(
        None, "--out", help="PNG grid of the decoded samples.", show_default="none"
    ),
    tokens: Path | None = typer.Option(
        None, "--tokens", help="Token file of the samples (.safetensors).", show_default="none"
    ),
    force: bool = FORCE,
    json_out: bool = JSON,
) -> None:
    """Draw token sequences (structural tokens placed), decode them, write a grid."""
    output.set_json_mode(json_out)
    target = size_option(size)
    require_suffix("--out", out, ".png")
    require_suffix("--tokens", tokens, ".safetensors")
    if out is None and tokens is None:
        raise InvalidOptionError("--out", "give --out (a PNG) and/or --tokens")
    claim_output(out, kind="file", force=force)
    claim_output(tokens, kind="file", force=force)
    import torch

    from geolip.downstream.diffusion import SamplingOptions
    from geolip.downstream.diffusion_io import load_diffusion
    from geolip.downstream.token_files import image_grid_png, write_png, write_token_ids

    dm = load_diffusion(model)
    chosen: int | str | None = label
    if label is not None and label.isdigit() and label not in dm.classes:
        chosen = int(label)
    dm.labels(1, chosen)  # an unknown class is refused before sampling
    options = SamplingOptions(
        steps=steps, schedule=dm.schedule, temperature=temperature, guidance=guidance
    )
    with output.status(f"sampling {n} sequences"):
        ids = dm.sample(n, target, chosen, seed=seed, options=options)
        images = torch.stack(dm.tokenizer.batch_decode(ids))
    if tokens is not None:
        write_token_ids(tokens, dm.tokenizer, ids, f"diffusion:{model.name}:seed={seed}")
        output.log(f"wrote {tokens}")
    if out is not None:
        write_png(out, image_grid_png([images], [f"samples, class {label}, seed {seed}"]))
        output.log(f"wrote {out}")
    doc: dict[str, Any] = {
        "out": None if out is None else str(out),
        "tokens": None if tokens is None else str(tokens),
        "samples": n,
        "class": label,
        "seed": seed,
        "tokens_per_image": int(ids.shape[1]),
        "shape": list(images.shape[1:]),
    }
    output.emit(doc, "samples")
