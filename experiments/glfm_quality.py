"""Sample quality of GLFM v1 / v3 / v4 against the plain flow, without FID (docs/glfm.md).

Usage: python experiments/glfm_quality.py [--preset cpu-small|gpu] [--dataset mnist|shapes]
       [--seeds 0,1] [--grid-seed 0] [--device cpu] [--steps N] [--batch N] [--euler N]
       [--out experiments/out/glfm_quality] [--figures docs/figures]
       python experiments/glfm_quality.py figure [--preset ...] [--dataset ...]

For each seed: a small CNN (geolip.downstream.cnn_expert) is trained on the flow's training
images and scored on held-out real images; then glfm-v1, glfm-v3, glfm-v4 and glfm-plain are
built under the seed, each draws 100 class-conditional samples per class untrained (the null),
is trained through the project's Trainer with one recipe (same steps, batch, lr schedule, data
and seed), and draws them again with the same noise (Euler, a fixed sampling seed). The samples
are scored by the classifier (after the data's own per-image standardisation) beside the
label-permutation null, Gaussian noise and the untrained samples, and by per-class pixel
statistics against the training images (geolip.downstream.sample_quality), beside held-out real
images (the floor for 100 images a class) and noise. Writes ``OUT/DATASET/PRESET/seedS.json``;
for ``--grid-seed`` a PNG grid of samples per model (and of the data) under ``--figures``, and
a summary figure over every seed file present. ``figure`` redraws the summary only.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import torch

from geolip._progress import progress_bar
from geolip.data import open_dataset
from geolip.data.dataset import ImageDataset
from geolip.downstream.classify import accuracy
from geolip.downstream.cnn_expert import CNNImage
from geolip.downstream.sample_quality import (
    class_pixel_statistics,
    classifier_report,
    predict,
    summarise_classes,
)
from geolip.downstream.token_files import image_grid_png, write_png
from geolip.producers.glfm import GLFM
from geolip.producers.presets import build, train_config
from geolip.producers.train import Trainer

MODELS = ("glfm-v1", "glfm-v3", "glfm-v4", "glfm-plain")
DATASETS = {
    # name: (training spec with {n}, held-out spec)
    "mnist": ("mnist:n={n},size=32", "mnist:split=test,n=2000,size=32"),
    "shapes": ("shapes:n={n},size=32,seed=0", "shapes:n=2000,size=32,seed=1"),
}
SAMPLE_SEED = 0
"""Every model samples from the same noise (and the same class order)."""
GRID_PER_CLASS = 10


@dataclass(frozen=True)
class Sizes:
    """One size of the comparison: the model overrides and the shared recipe."""

    model: dict[str, Any] = field(default_factory=dict)
    steps: int = 1000
    batch: int = 32
    lr: float = 1e-3
    warmup: float = 0.05
    n_train: int = 12_000
    euler: int = 20
    per_class: int = 100
    classifier_size: int = 16
    classifier_epochs: int = 4
    threads: int = 1


SIZES = {
    # one CPU thread, < 15 minutes: the drift study's small widths
    "cpu-small": Sizes(model={"width": 32, "hidden": 128, "n_anchors": 64, "n_blocks": 2}),
    # the presets' widths (v4 33.4M parameters) and their lr, on one H100 in < 4 minutes
    "gpu": Sizes(
        steps=2000,
        batch=128,
        lr=3e-4,
        n_train=60_000,
        euler=50,
        classifier_epochs=5,
        threads=8,
    ),
}


def as_dataset(x: torch.Tensor) -> ImageDataset:
    """Samples (N, C, H, W) as an unlabelled dataset, for the data pipeline's transforms."""
    labels = torch.zeros(x.shape[0], dtype=torch.long)
    return ImageDataset.from_tensors("samples", x.cpu(), labels, ("-",))


class Scorer:
    """The classifier and the reference images every set of samples is scored against."""

    def __init__(self, train: ImageDataset, held: ImageDataset, sizes: Sizes, seed: int) -> None:
        start = time.perf_counter()
        self.size = sizes.classifier_size
        expert = CNNImage(size=self.size, epochs=sizes.classifier_epochs)
        self.classifier = expert.fit(train, torch.arange(len(train)), seed)
        self.n_classes = len(train.classes)
        self.reference, self.reference_labels = train.images, train.labels
        held_x = held.resized(self.size).images
        self.classifier_info = {
            **expert.describe(),
            "train_images": len(train),
            "held_out_images": len(held),
            "held_out_accuracy": accuracy(self.classifier, held_x, held.labels),
            "seconds": time.perf_counter() - start,
        }

    def score(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
        """Classifier report and per-class pixel statistics of images (N, C, 32, 32). The
        classifier sees them as it saw the data: standardised per image, then resized."""
        x = x.detach().cpu().float()
        seen = as_dataset(x).standardized().resized(self.size).images
        report = classifier_report(predict(self.classifier, seen), labels, self.n_classes)
        raw = predict(self.classifier, as_dataset(x).resized(self.size).images)
        report["accuracy_unstandardized"] = (raw == labels).double().mean().item()
        rows = class_pixel_statistics(
            x, labels, self.reference, self.reference_labels, self.n_classes
        )
        return {"classifier": report, "pixels": summarise_classes(rows), "per_class": rows}


def start_noise_cosine(model: GLFM, samples: torch.Tensor) -> float:
    """Mean cosine between each sample and the noise ε its Euler path started from (drawn as
    ``GLFM.sample`` documents: ``torch.Generator(device).manual_seed(SAMPLE_SEED)``). About 0
    for samples that forgot their start, 1 for samples that are still that noise."""
    gen = torch.Generator(device=model.device).manual_seed(SAMPLE_SEED)
    eps = torch.randn(samples.shape, generator=gen, device=model.device).cpu()
    return torch.cosine_similarity(samples.flatten(1), eps.flatten(1), dim=1).mean().item()


def held_out_balanced(held: ImageDataset, per_class: int, n_classes: int) -> ImageDataset:
    """The first ``per_class`` held-out images of each class, class-major."""
    idx = torch.cat([(held.labels == c).nonzero().flatten()[:per_class] for c in range(n_classes)])
    return held.subset(idx)


def run_model(
    name: str,
    sizes: Sizes,
    spec: str,
    data: ImageDataset,
    scorer: Scorer,
    labels: torch.Tensor,
    seed: int,
    device: str,
    scratch: Path,
) -> tuple[dict[str, Any], torch.Tensor]:
    """Untrained samples, training through the Trainer, trained samples; their scores."""
    overrides = {**sizes.model, "channels": data.channels, "n_classes": len(data.classes)}
    model = build(name, seed=seed, **overrides).to(device)
    assert isinstance(model, GLFM)
    start = time.perf_counter()
    untrained = model.sample(labels, steps=sizes.euler, seed=SAMPLE_SEED).cpu()
    null_seconds = time.perf_counter() - start
    recipe = train_config(
        name,
        lr=sizes.lr,
        epochs=1,
        steps_per_epoch=sizes.steps,
        batch_size=sizes.batch,
        dataset=spec,
        eval_per_type=16,
        seed=seed,
        lr_schedule="warmup-cosine",
        warmup_steps=int(sizes.warmup * sizes.steps),
    )
    trainer = Trainer(model, recipe, scratch / name, device=device)  # no fit(): nothing saved
    losses: list[torch.Tensor] = []
    start = time.perf_counter()
    with progress_bar(True, "loss {task.fields[loss]:.3f}") as bar:
        task = bar.add_task(name, total=sizes.steps, loss=float("nan"))
        while trainer.step < sizes.steps:
            losses.append(trainer.train_step())
            if trainer.step % 50 == 0:
                bar.update(task, completed=trainer.step, loss=losses[-1].item())
    train_seconds = time.perf_counter() - start
    loss_curve = torch.stack(losses).cpu()
    validation = trainer.evaluate()
    start = time.perf_counter()
    samples = model.sample(labels, steps=sizes.euler, seed=SAMPLE_SEED).cpu()
    sample_seconds = time.perf_counter() - start
    trained, null = scorer.score(samples, labels), scorer.score(untrained, labels)
    trained["start_noise_cosine"] = start_noise_cosine(model, samples)
    null["start_noise_cosine"] = start_noise_cosine(model, untrained)
    result = {
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "train_seconds": train_seconds,
        "sample_seconds": sample_seconds,
        "untrained_sample_seconds": null_seconds,
        "train_loss_first_50": loss_curve[:50].mean().item(),
        "train_loss_last_50": loss_curve[-50:].mean().item(),
        "train_loss_every_50": [c.mean().item() for c in loss_curve.split(50)],
        "validation": validation,
        "trained": trained,
        "untrained": null,
    }
    c, p = trained["classifier"], trained["pixels"]
    print(
        f"{name}: {result['n_parameters']:,} parameters, train {train_seconds:.0f} s, "
        f"val mse {validation['mse']:.3f}, accuracy {c['accuracy']:.3f} "
        f"(untrained {null['classifier']['accuracy']:.3f}, permutation null "
        f"{c['null_mean']:.3f} ± {c['null_sd']:.3f}), mean-image MSE "
        f"{p['mean_image_mse']:.3f} (untrained {null['pixels']['mean_image_mse']:.3f}), "
        f"cosine to the start noise {trained['start_noise_cosine']:.3f}",
        flush=True,
    )
    return result, samples


def grid(images: torch.Tensor, labels: torch.Tensor, classes: tuple[str, ...], path: Path) -> None:
    """PNG of the first GRID_PER_CLASS images of each class, one row a class."""
    rows = [images[labels == c][:GRID_PER_CLASS] for c in range(len(classes))]
    write_png(path, image_grid_png(rows, [f"class {name}" for name in classes], scale=2))


def run_seed(args: argparse.Namespace, sizes: Sizes, seed: int, figures: bool) -> dict[str, Any]:
    train_spec, held_spec = DATASETS[args.dataset]
    spec = train_spec.format(n=sizes.n_train)
    start = time.perf_counter()
    train, held = open_dataset(spec), open_dataset(held_spec)
    print(f"data: {spec} ({len(train)}) and {held_spec} in {time.perf_counter() - start:.0f} s")
    scorer = Scorer(train, held, sizes, seed)
    print(f"classifier: held-out accuracy {scorer.classifier_info['held_out_accuracy']:.4f}")
    k = len(train.classes)
    labels = torch.arange(k).repeat_interleave(sizes.per_class)
    real = held_out_balanced(held, sizes.per_class, k)
    noise = torch.randn(
        labels.numel(), train.channels, 32, 32, generator=torch.Generator().manual_seed(seed)
    )
    baselines = {
        "held_out_real": scorer.score(real.images, real.labels),
        "gaussian_noise": scorer.score(noise, labels),
    }
    models: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name in MODELS:
            models[name], samples = run_model(
                name, sizes, spec, train, scorer, labels, seed, args.device, Path(scratch)
            )
            if figures:
                grid(samples, labels, train.classes, args.figures / f"{stem(args)}_{name}.png")
    if figures:
        grid(real.images, real.labels, train.classes, args.figures / f"{stem(args)}_data.png")
    return {
        "command": "python experiments/glfm_quality.py "
        + " ".join(
            f"--{k.replace('_', '-')} {v}"
            for k, v in vars(args).items()
            if k != "cmd" and v is not None
        ),
        "date": date.today().isoformat(),
        "device": device_line(args.device),
        "dataset": spec,
        "held_out": held_spec,
        "seed": seed,
        "sample_seed": SAMPLE_SEED,
        "sizes": asdict(sizes),
        "classifier": scorer.classifier_info,
        "baselines": baselines,
        "models": models,
        "seconds": time.perf_counter() - start,
    }


def device_line(device: str) -> str:
    if device.startswith("cuda"):
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    return (
        f"{platform.machine()} CPU, {torch.get_num_threads()} thread(s), torch {torch.__version__}"
    )


def stem(args: argparse.Namespace) -> str:
    return f"glfm_quality_{args.dataset}_{args.preset}"


def result_folder(args: argparse.Namespace) -> Path:
    return args.out / args.dataset / args.preset


def summary_figure(args: argparse.Namespace) -> Path | None:
    """Accuracy, mean-image MSE and diversity of every model over every seed file present."""
    docs = [json.loads(p.read_text()) for p in sorted(result_folder(args).glob("seed*.json"))]
    if not docs:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (
        ("accuracy", lambda s: s["classifier"]["accuracy"], "classifier accuracy on samples"),
        ("mean_image_mse", lambda s: s["pixels"]["mean_image_mse"], "per-class mean-image MSE"),
        (
            "diversity",
            lambda s: s["pixels"]["samples_diversity"] / s["pixels"]["reference_diversity"],
            "diversity, samples / data",
        ),
    )
    fig, axes = plt.subplots(1, len(panels), figsize=(15, 4))
    x = np.arange(len(MODELS))
    for ax, (_, value, title) in zip(axes, panels, strict=True):
        for j, doc in enumerate(docs):
            offset = (j - (len(docs) - 1) / 2) * 0.12
            trained = [value(doc["models"][m]["trained"]) for m in MODELS]
            untrained = [value(doc["models"][m]["untrained"]) for m in MODELS]
            ax.scatter(x + offset, trained, color="C0", label="trained" if j == 0 else None)
            ax.scatter(
                x + offset,
                untrained,
                color="grey",
                marker="x",
                label="untrained (null)" if j == 0 else None,
            )
        for key, style in (("held_out_real", "C2"), ("gaussian_noise", "C3")):
            level = np.mean([value(doc["baselines"][key]) for doc in docs])
            ax.axhline(level, color=style, ls="--", lw=1, label=key.replace("_", " "))
        ax.set_xticks(x, MODELS)
        ax.set_title(title)
    axes[0].axhline(
        np.mean([d["models"][MODELS[0]]["trained"]["classifier"]["null_p95"] for d in docs]),
        color="k",
        ls=":",
        lw=1,
        label="permutation null p95",
    )
    axes[0].set_ylim(0, 1.02)
    axes[1].set_yscale("log")
    axes[0].legend(fontsize=7)
    seeds = ", ".join(str(d["seed"]) for d in docs)
    fig.suptitle(f"{docs[0]['dataset']}, {args.preset}, seeds {seeds}", fontsize=9)
    fig.tight_layout()
    path = args.figures / f"{stem(args)}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cmd", nargs="?", choices=("run", "figure"), default="run")
    parser.add_argument("--preset", choices=tuple(SIZES), default="cpu-small")
    parser.add_argument("--dataset", choices=tuple(DATASETS), default="mnist")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--grid-seed", type=int, default=0, help="the seed whose samples are drawn")
    parser.add_argument("--steps", type=int, help="override the preset's training steps")
    parser.add_argument("--batch", type=int, help="override the preset's batch size")
    parser.add_argument("--euler", type=int, help="override the preset's Euler steps")
    parser.add_argument("--threads", type=int, help="override the preset's CPU threads")
    parser.add_argument("--out", type=Path, default=Path("experiments/out/glfm_quality"))
    parser.add_argument("--figures", type=Path, default=Path("docs/figures"))
    args = parser.parse_args()
    if args.cmd == "run":
        given = {"steps": args.steps, "batch": args.batch, "euler": args.euler}
        sizes = Sizes(**{**asdict(SIZES[args.preset]), **{k: v for k, v in given.items() if v}})
        torch.set_num_threads(args.threads or sizes.threads)
        folder = result_folder(args)
        folder.mkdir(parents=True, exist_ok=True)
        for seed in (int(s) for s in args.seeds.split(",")):
            doc = run_seed(args, sizes, seed, figures=seed == args.grid_seed)
            (folder / f"seed{seed}.json").write_text(json.dumps(doc, indent=1) + "\n")
            print(f"seed {seed}: {doc['seconds']:.0f} s, wrote {folder / f'seed{seed}.json'}")
    print(f"figure: {summary_figure(args)}")


if __name__ == "__main__":
    main()
