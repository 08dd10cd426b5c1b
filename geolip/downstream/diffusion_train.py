"""Training a diffusion model on a dataset's axis tokens: seeded, checkpointed, resumable.

Each dataset is tokenized once (:meth:`GeolipImageTokenizer.axis_ids`), with its own patch
grid. Several datasets are the same images at several sizes: one model learns every sequence
length (its positions are relative to the image frame, :mod:`geolip.downstream.diffusion`).
Each step draws one size (uniformly, when there are several), a batch of that size's
sequences, masks them (:func:`geolip.downstream.diffusion.masked_loss`) and takes one AdamW
step (learning rate warmed up linearly, then constant); sequences of two lengths never share
a batch. One CPU generator, seeded by ``seed``, draws the sizes, the batches, the masks and
the dropped labels, on every device alike; it is saved with the optimizer moments in every
checkpoint, so a resumed run continues exactly as an uninterrupted one would. The denoiser
trains on ``device``; tokens stay on the CPU and each batch is moved there. Checkpoints are
the model folder itself (:mod:`geolip.downstream.diffusion_io`, CPU tensors), written every
``checkpoint_every`` steps, at the end and on Ctrl-C: the folder is always loadable.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, PositiveInt
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from geolip.data.dataset import ImageDataset, fingerprint_of
from geolip.downstream.diffusion import (
    AxisDenoiser,
    DenoiserConfig,
    DiffusionModel,
    Grid,
    masked_loss,
)
from geolip.downstream.diffusion_io import load_diffusion, read_training, save_diffusion
from geolip.downstream.diffusion_schedules import Schedule
from geolip.downstream.token_files import check_dataset
from geolip.downstream.tokenizer import GeolipImageTokenizer
from geolip.errors import CheckpointError, IncompatibleInputError, TrainingInterrupted


class DiffusionTrainConfig(BaseModel):
    """Settings of one run; frozen, unknown fields refused.

    Attributes:
        steps: optimizer steps in all (a resumed run continues up to it).
        batch_size, lr, warmup, weight_decay: AdamW on batches drawn with replacement.
        schedule: the masking schedule (also sampling's default).
        p_uncond: probability of training a sequence without its class.
        conditional: condition on the dataset's classes (False: unconditional).
        dim, depth, heads: the denoiser's width, layers and heads.
        seed: the initial weights and the run's generator.
        checkpoint_every: steps between checkpoints (0: only at the end).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    steps: PositiveInt = 2000
    batch_size: PositiveInt = 32
    lr: float = Field(3e-4, gt=0)
    warmup: int = Field(100, ge=0)
    weight_decay: float = Field(0.01, ge=0)
    schedule: Schedule = "cosine"
    p_uncond: float = Field(0.1, ge=0, le=1)
    conditional: bool = True
    dim: PositiveInt = 128
    depth: PositiveInt = 4
    heads: PositiveInt = 4
    seed: int = 0
    checkpoint_every: int = Field(500, ge=0)


@dataclass
class DiffusionRun:
    """What :func:`train_diffusion` returns: the model, the step reached, the loss per step of
    this call (a resumed run holds only the steps it took)."""

    model: DiffusionModel
    step: int
    losses: list[float] = field(default_factory=list)


def tokenize_for_diffusion(
    tokenizer: GeolipImageTokenizer, dataset: ImageDataset, batch_size: int = 64
) -> tuple[torch.Tensor, tuple[int, int]]:
    """Every image of ``dataset`` → (axis ids (N, gh·gw·V·k) int64, grid (gh, gw)).

    Raises:
        DatasetError, IncompatibleInputError: channels, size or an empty dataset the
            producer cannot take, before any image is encoded.
    """
    check_dataset(tokenizer, dataset)
    ids = [tokenizer.axis_ids(images).flatten(1) for images in dataset.batches(batch_size)]
    return torch.cat(ids), tokenizer.grid(dataset.size)


def train_diffusion(
    tokenizer: GeolipImageTokenizer,
    dataset: ImageDataset | Sequence[ImageDataset],
    out: str | Path,
    config: DiffusionTrainConfig | None = None,
    *,
    resume: bool = False,
    progress: bool = False,
    announce: Callable[[str], None] | None = None,
    device: str | torch.device = "cpu",
) -> DiffusionRun:
    """Train (or, with ``resume``, continue) a denoiser on ``dataset``'s tokens into ``out``.

    On Ctrl-C the last whole step is saved, with the generator as it was before the
    unfinished step, so a resumed run redoes that step exactly.

    Args:
        tokenizer: the tokenizer whose tokens are modelled (saved into ``out``); images are
            tokenized wherever its producer is.
        dataset: training images, all of one size, or several datasets of the same images
            at different sizes (module docstring); their classes condition the model, whose
            ``train_size`` (sampling's default size) is the smallest of them.
        out: the model folder, rewritten at every checkpoint.
        config: the run's settings; default :class:`DiffusionTrainConfig` ().
        resume: continue the run saved in ``out``: same tokenizer, datasets and settings,
            except ``steps``, which may grow; on any device.
        progress: a rich progress bar on stderr.
        device: where the denoiser trains; the returned model is there.

    Raises:
        IncompatibleInputError: images the producer cannot take, or sizes that differ in
            classes or channels, before any work.
        CheckpointError: ``resume`` with a checkpoint of another tokenizer, dataset or settings.
        TrainingInterrupted: Ctrl-C; the step reached was saved in ``out`` first.
    """
    config = config or DiffusionTrainConfig()
    sets = _training_sets(dataset)
    for data in sets:
        check_dataset(tokenizer, data)  # every size is refused or taken before any encoding
    classes = sets[0].classes if config.conditional else ()
    denoiser_config = DenoiserConfig(
        axis_tokens=2 * tokenizer.codebook.size,
        rows_per_patch=tokenizer.producer.geometry.rows_per_token,
        top_k=tokenizer.top_k,
        num_classes=len(classes),
        dim=config.dim,
        depth=config.depth,
        heads=config.heads,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        denoiser = AxisDenoiser(denoiser_config)
    denoiser.to(device)  # the same initial weights on every device
    pools = [_pool(tokenizer, data, config.conditional) for data in sets]
    model = DiffusionModel(denoiser, tokenizer, tuple(classes), sets[0].size, config.schedule)
    optimizer = torch.optim.AdamW(
        denoiser.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    generator = torch.Generator().manual_seed(config.seed)
    record = {
        "dataset": " + ".join(dict.fromkeys(d.name for d in sets)),
        "dataset_fingerprint": _fingerprint(sets),
        "sizes": [list(d.size) for d in sets],
        "config": config.model_dump(mode="json"),
    }
    step, earlier = 0, []
    if resume:
        step, earlier = _restore(out, model, optimizer, generator, record)
    run = DiffusionRun(model, step)

    def checkpoint() -> None:
        state = _optimizer_tensors(optimizer)
        state["generator"] = generator.get_state()
        recent = (earlier + run.losses)[-50:]  # the last 50 losses of the whole run
        save_diffusion(out, model, {**record, "step": run.step, "losses": recent}, state)

    denoiser.train()
    at_last_step = generator.get_state()  # the generator as of the last whole step
    try:
        with _progress(progress) as bar:
            task = bar.add_task("diffusion", total=config.steps, completed=step, loss=math.nan)
            while run.step < config.steps:
                for group in optimizer.param_groups:
                    group["lr"] = config.lr * min(1.0, (run.step + 1) / max(config.warmup, 1))
                ids, labels, grid = _draw(pools, config.batch_size, generator)
                loss = masked_loss(
                    denoiser,
                    ids,
                    grid,
                    labels,
                    config.schedule,
                    generator,
                    config.p_uncond if classes else 1.0,
                )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                run.step += 1
                at_last_step = generator.get_state()
                run.losses.append(float(loss.detach()))
                bar.update(task, advance=1, loss=run.losses[-1])
                every = config.checkpoint_every
                if every and run.step % every == 0 and run.step < config.steps:
                    checkpoint()
    except KeyboardInterrupt:
        generator.set_state(at_last_step)  # an unfinished step is redone on resume
        checkpoint()
        if announce is not None:
            announce(f"interrupted at step {run.step}; saved {out}")
        raise TrainingInterrupted(
            f"interrupted at step {run.step}; saved {out}", run.step, 0, Path(out)
        ) from None
    checkpoint()
    denoiser.eval()
    return run


def _training_sets(datasets: ImageDataset | Sequence[ImageDataset]) -> tuple[ImageDataset, ...]:
    """The datasets of a run, smallest size (H·W) first: the order its generator picks from.

    Raises:
        IncompatibleInputError: no dataset, two of one size, or sizes whose classes or
            channels differ, before any image is made.
    """
    sets = (datasets,) if isinstance(datasets, ImageDataset) else tuple(datasets)
    if not sets:
        raise IncompatibleInputError("no training dataset given")
    first = sets[0]
    for other in sets[1:]:
        for what in ("classes", "channels"):
            if getattr(other, what) != getattr(first, what):
                raise IncompatibleInputError(
                    f"the training sizes must share their {what}: {getattr(first, what)} at "
                    f"{_size(first)}, {getattr(other, what)} at {_size(other)}"
                )
    sizes = [d.size for d in sets]
    if len(set(sizes)) != len(sizes):
        twice = next(s for s in sizes if sizes.count(s) > 1)
        raise IncompatibleInputError(f"two training datasets of one size, {twice[0]}×{twice[1]}")
    return tuple(sorted(sets, key=lambda d: (d.size[0] * d.size[1], d.size)))


@dataclass(frozen=True)
class _Pool:
    """The training sequences of one size, on the CPU: ids (N, gh·gw·V·k) int64 and labels
    (N,) int64 (all the null class 0 for an unconditional model)."""

    ids: torch.Tensor
    labels: torch.Tensor
    grid: Grid


def _pool(tokenizer: GeolipImageTokenizer, dataset: ImageDataset, conditional: bool) -> _Pool:
    ids, grid = tokenize_for_diffusion(tokenizer, dataset)
    labels = dataset.labels.clone() if conditional else torch.zeros(len(ids), dtype=torch.int64)
    return _Pool(ids, labels, grid)


def _draw(
    pools: Sequence[_Pool], batch_size: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, Grid]:
    """(ids (B, N), labels (B,), grid) of one step: a size drawn uniformly (no draw for a
    single size, so one-dataset runs draw as they always did), then ``batch_size`` of its
    sequences with replacement."""
    pool = pools[0]
    if len(pools) > 1:
        pool = pools[int(torch.randint(len(pools), (1,), generator=generator))]
    pick = torch.randint(len(pool.ids), (batch_size,), generator=generator)
    return pool.ids[pick], pool.labels[pick], pool.grid


def _fingerprint(sets: Sequence[ImageDataset]) -> str:
    """What a resumed run must be trained on: a single dataset's own fingerprint (checkpoints
    of one size keep resuming), else one over every size's, smallest first."""
    if len(sets) == 1:
        return sets[0].fingerprint
    return fingerprint_of("sizes", *(d.fingerprint for d in sets))


def _size(dataset: ImageDataset) -> str:
    return f"{dataset.size[0]}×{dataset.size[1]}"


def _restore(
    out: str | Path,
    model: DiffusionModel,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    record: dict[str, Any],
) -> tuple[int, list[float]]:
    """Load the checkpoint in ``out`` into the fresh model, optimizer and generator; returns
    the step reached and the last losses recorded."""
    saved, tensors = read_training(out)
    where = Path(out)
    if saved.get("dataset_fingerprint") != record["dataset_fingerprint"]:
        sizes = ", ".join(f"{h}×{w}" for h, w in saved.get("sizes") or [])
        raise CheckpointError(
            f"the run was trained on another dataset ({saved.get('dataset')}"
            f"{' at ' + sizes if sizes else ''})",
            where,
        )
    ours = {k: v for k, v in record["config"].items() if k != "steps"}
    theirs = {k: v for k, v in dict(saved.get("config") or {}).items() if k != "steps"}
    if ours != theirs:
        changed = sorted(k for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k))
        raise CheckpointError(f"the run used other settings: {', '.join(changed)}", where)
    back = load_diffusion(out)
    if back.tokenizer.codebook.id != model.tokenizer.codebook.id or (
        back.tokenizer.producer.producer_id != model.tokenizer.producer.producer_id
    ):
        raise IncompatibleInputError(f"{where}: the run was trained with another tokenizer")
    model.denoiser.load_state_dict(back.denoiser.state_dict())
    state = optimizer.state_dict()
    params = state["param_groups"][0]["params"]
    state["state"] = {
        i: {name: tensors[f"optimizer.{i}.{name}"] for name in ("step", "exp_avg", "exp_avg_sq")}
        for i in params
    }
    optimizer.load_state_dict(state)
    generator.set_state(tensors["generator"])
    return int(saved["step"]), [float(x) for x in saved.get("losses") or []]


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """AdamW's per-parameter moments as flat named tensors ``optimizer.I.NAME``."""
    return {
        f"optimizer.{i}.{name}": value.detach().clone()
        for i, slots in optimizer.state_dict()["state"].items()
        for name, value in slots.items()
    }


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.3f}"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
        disable=not enabled,
    )
