"""Train the small pretrained defaults of GLFM, the SVAE-transformer and the CV-battery on the CPU.

Usage: python experiments/train_producers_ii.py OUT [--seed 0] [--log PATH] [--only NAME ...]

Writes OUT/NAME/config.json + model.safetensors for each default below (the best epoch by
validation MSE; ``config.json`` keeps the model config, the recipe and that epoch's metrics, as
the shipped sphere-solvers' do) and the training log (recipes, wall times, every epoch's
metrics) to ``--log`` (default OUT/training-log.json). The shipped folders are
``python experiments/train_producers_ii.py geolip/data/pretrained --log
docs/pretrained/training-log-ii.json``; ``--seed 1`` into another folder gives the twins the
alignment of docs/producers-ii.md compares them with.

Every run starts from ``torch.manual_seed(seed)`` on one CPU thread, so the same seed gives the
same bytes on the same machine and torch build (the log's wall times are the only difference).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import torch

from geolip.producers.checkpoint import load_checkpoint
from geolip.producers.loading import load_folder
from geolip.producers.presets import build, train_config
from geolip.producers.pretrained import pretrained_files, write_pretrained
from geolip.producers.train import Trainer

SHIPPED_KEYS = ("model_class", "model", "preset", "train", "best_mse", "epoch", "step", "metrics")
"""What a shipped ``config.json`` keeps of the training checkpoint's (no optimizer, scheduler or
history: those are in the log)."""


@dataclass(frozen=True)
class Default:
    """A shipped default: a preset, the model fields changed from it and the recipe's."""

    preset: str
    model: Mapping[str, Any] = field(default_factory=dict)
    recipe: Mapping[str, Any] = field(default_factory=dict)


DEFAULTS: dict[str, Default] = {
    # glfm-v4 at the width of the drift experiment (docs/glfm.md): 486,179 parameters
    "glfm-shapes": Default(
        "glfm-v4",
        {"width": 32, "hidden": 128, "n_anchors": 64, "n_blocks": 2},
        {
            "dataset": "shapes:n=4000,size=32",
            "batch_size": 32,
            "lr": 1e-3,
            "epochs": 5,
            "steps_per_epoch": 300,
        },
    ),
    # the svae-transformer preset on Gaussian noise, the data of the shipped h2-gaussian
    "svae-gaussian": Default(
        "svae-transformer",
        {},
        {
            "dataset": None,
            "noises": ("gaussian",),
            "img_size": 16,
            "batch_size": 32,
            "lr": 1e-3,
            "epochs": 5,
            "steps_per_epoch": 200,
        },
    ),
    # the cv-battery preset on its 16 noises, at 16² (the model is per 4 × 4 patch)
    "cv-battery-noise": Default(
        "cv-battery",
        {},
        {
            "img_size": 16,
            "batch_size": 32,
            "lr": 1e-3,
            "epochs": 5,
            "steps_per_epoch": 200,
            "eval_per_type": 8,
        },
    ),
}


def n_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def train_default(name: str, out: Path, seed: int) -> dict[str, Any]:
    """Train ``DEFAULTS[name]`` under ``seed`` and write its best epoch to ``out/name``;
    returns the run's log entry."""
    spec = DEFAULTS[name]
    config = train_config(spec.preset, **{**spec.recipe, "seed": seed})
    torch.manual_seed(seed)
    model = build(spec.preset, seed=seed, **spec.model)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(model, config, run_dir)
        start = time.perf_counter()
        history = trainer.fit(progress=False)
        seconds = time.perf_counter() - start
        best = load_checkpoint(Path(run_dir) / "best")
    doc = {k: best.config[k] for k in SHIPPED_KEYS}
    folder = write_pretrained(out / name, pretrained_files(doc, best.model), verify=load_folder)
    size = (folder / "model.safetensors").stat().st_size
    print(
        f"{name}: {n_parameters(model):,} parameters, {seconds:.0f} s, best epoch "
        f"{doc['epoch']} mse {doc['best_mse']:.4g}, {size:,} B",
        flush=True,
    )
    return {
        "preset": spec.preset,
        "model_overrides": dict(spec.model),
        "recipe": config.model_dump(mode="json"),
        "parameters": n_parameters(model),
        "seconds": seconds,
        "weights_bytes": size,
        "best_epoch": doc["epoch"],
        "best_mse": doc["best_mse"],
        "history": history,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log", type=Path, default=None)
    parser.add_argument("--only", nargs="+", choices=sorted(DEFAULTS), default=list(DEFAULTS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    log: dict[str, Any] = {
        "command": "python experiments/train_producers_ii.py "
        f"{args.out} --seed {args.seed}" + ("" if args.log is None else f" --log {args.log}"),
        "device": f"{platform.machine()} CPU, 1 thread",
        "torch": torch.__version__,
        "date": date.today().isoformat(),
        "seed": args.seed,
        "runs": {},
    }
    log_path = args.log or args.out / "training-log.json"
    for name in args.only:
        log["runs"][name] = train_default(name, args.out, args.seed)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text(json.dumps(log, indent=1) + "\n")


if __name__ == "__main__":
    main()
