"""Time to quality: seconds of Freckles training until validation MSE reaches a level and stays.

Each run trains the Freckles model (unchanged) with geolip's Trainer on fresh 16-type noise every
step and evaluates it every ``--eval-every`` steps on one fixed seeded validation set (32 images
of each of the 16 types, drawn once from seed 10,000: the same set for every recipe and seed).
The clock runs only while training (synchronised before and after each evaluation); evaluation
time is reported beside it. For each level the run reports

- ``cross``: the first evaluation at or below the level (seconds, step);
- ``stay``: the first evaluation from which every later one, to the end of the run, is at or
  below the level; ``null`` when the last evaluation is above it.

A recipe is a set of TrainConfig overrides (lr, batch size, schedule, warm-up, steps) plus
``compile`` (encoder and decoder under torch.compile; compile time counts as training time).
The baseline in the same run is the preset's own recipe (lr 1e-4, the per-epoch cosine).

Usage: python benchmarks/bench_quality.py [--recipes 'a;b'] [--seeds 0,1,2] [--json F] [--no-doc]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from timing import close_provenance, display_path, provenance, write_section

from geolip.data.noise import TRAINING_NOISES, noise_batch
from geolip.producers.presets import get_preset, train_config
from geolip.producers.sphere_solver import SphereSolver
from geolip.producers.train import Trainer

LEVELS = (0.0075, 0.0035)
EVAL_SEED = 10_000
EVAL_PER_TYPE = 32

RECIPES: dict[str, dict[str, Any]] = {
    "preset (lr 1e-4, cosine per epoch)": {"lr": 1e-4, "steps": 2400},
    "lr 1e-3, warm-up 100, cosine 1000": {
        "lr": 1e-3,
        "lr_schedule": "warmup-cosine",
        "warmup_steps": 100,
        "steps": 1000,
    },
    "lr 2e-3, warm-up 100, cosine 1000": {
        "lr": 2e-3,
        "lr_schedule": "warmup-cosine",
        "warmup_steps": 100,
        "steps": 1000,
    },
    "lr 3e-3, warm-up 200, cosine 1000": {
        "lr": 3e-3,
        "lr_schedule": "warmup-cosine",
        "warmup_steps": 200,
        "steps": 1000,
    },
    "lr 3e-3, warm-up 100, cosine 500": {
        "lr": 3e-3,
        "lr_schedule": "warmup-cosine",
        "warmup_steps": 100,
        "steps": 500,
    },
    "lr 2e-3, warm-up 100, cosine 600": {
        "lr": 2e-3,
        "lr_schedule": "warmup-cosine",
        "warmup_steps": 100,
        "steps": 600,
    },
    "batch 512, lr 2e-3, warm-up 100, cosine 600": {
        "lr": 2e-3,
        "batch_size": 512,
        "lr_schedule": "warmup-cosine",
        "warmup_steps": 100,
        "steps": 600,
    },
}


def validation_set(device: str) -> list[torch.Tensor]:
    """The fixed evaluation images: one (32, 3, 64, 64) batch per training type."""
    gen = torch.Generator(device=device).manual_seed(EVAL_SEED)
    return [
        noise_batch(kind, EVAL_PER_TYPE, 64, generator=gen, device=device)
        for kind in TRAINING_NOISES
    ]


@torch.no_grad()
def validation_mse(model: torch.nn.Module, images: list[torch.Tensor]) -> float:
    """Mean over types of the per-type reconstruction MSE (float32, eval mode), as the
    Trainer's own validation computes it."""
    model.eval()
    per_type = [torch.nn.functional.mse_loss(model(x)["recon"].float(), x) for x in images]
    model.train()
    return torch.stack(per_type).mean().item()


def reached(curve: list[dict[str, float]], level: float) -> dict[str, Any]:
    """First crossing and the start of the final stretch at or below ``level``."""
    cross = next((p for p in curve if p["mse"] <= level), None)
    stay = None
    if curve and curve[-1]["mse"] <= level:
        i = len(curve) - 1
        while i > 0 and curve[i - 1]["mse"] <= level:
            i -= 1
        stay = curve[i]
    pick = ("seconds", "step")
    return {
        "cross": None if cross is None else {k: cross[k] for k in pick},
        "stay": None if stay is None else {k: stay[k] for k in pick},
    }


def run(recipe: dict[str, Any], seed: int, eval_every: int, images: list[torch.Tensor]) -> dict:
    """One training run of a recipe from a seed; the validation curve and its levels."""
    overrides = {k: v for k, v in recipe.items() if k not in ("steps", "compile")}
    steps = recipe["steps"]
    torch.manual_seed(seed)
    model = SphereSolver(get_preset("freckles").model, preset="freckles")
    if recipe.get("compile"):
        model._encode = torch.compile(model._encode)
        model._decode = torch.compile(model._decode)
    if overrides.get("lr_schedule") == "warmup-cosine":  # the cosine ends at the last step
        overrides.update(epochs=1, steps_per_epoch=steps)
    # else the preset's epochs of 1,953 steps: the per-epoch cosine stays at lr in this run
    config = train_config("freckles", seed=seed, **overrides)
    trainer = Trainer(model, config, Path("/tmp/bench_quality"), device="cuda")
    curve, trained, evaluating = [], 0.0, 0.0
    torch.cuda.synchronize()
    start = time.perf_counter()
    for step in range(1, steps + 1):
        trainer.train_step()
        if step % eval_every == 0 or step == steps:
            torch.cuda.synchronize()
            now = time.perf_counter()
            trained += now - start
            mse = validation_mse(trainer.model, images)
            curve.append({"step": step, "seconds": trained, "mse": mse})
            start = time.perf_counter()
            evaluating += start - now
    return {
        "seed": seed,
        "steps": steps,
        "train_seconds": trained,
        "eval_seconds": evaluating,
        "final_mse": curve[-1]["mse"],
        "levels": {str(level): reached(curve, level) for level in LEVELS},
        "curve": curve,
    }


def level_cell(runs: list[dict], level: float, key: str, field: str) -> str:
    """Median (min–max) of a level's seconds or steps over seeds; "not reached (k/n)"."""
    got = [r["levels"][str(level)][key] for r in runs]
    values = [g[field] for g in got if g is not None]
    if len(values) < len(got):
        return f"not reached in {len(got) - len(values)}/{len(got)}"
    fmt = "{:.1f}" if field == "seconds" else "{:,.0f}"
    med = fmt.format(statistics.median(values))
    return f"{med} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--recipes", default=None, help="recipe labels separated by ';'")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--eval-every", type=int, default=25)
    parser.add_argument("--json", default=None)
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench_quality needs a CUDA GPU")
    torch.backends.cuda.matmul.allow_tf32 = True
    labels = list(RECIPES) if args.recipes is None else args.recipes.split(";")
    unknown = [label for label in labels if label not in RECIPES]
    if unknown:
        sys.exit(f"unknown recipes {unknown}; known: {list(RECIPES)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    prov = provenance(device=torch.cuda.get_device_name(0))
    images = validation_set("cuda")
    results: dict[str, list[dict]] = {}
    for label in labels:
        results[label] = []
        for seed in seeds:
            found = run(RECIPES[label], seed, args.eval_every, images)
            results[label].append(found)
            summary = {str(lv): found["levels"][str(lv)]["stay"] for lv in LEVELS}
            print(label, seed, f"final {found['final_mse']:.5f}", summary, flush=True)
    if args.json:
        data = {"provenance": close_provenance(prov), "recipes": RECIPES, "runs": results}
        Path(args.json).write_text(json.dumps(data, indent=2))
    if args.no_doc:
        return
    rows = []
    for label, runs in results.items():
        finals = [r["final_mse"] for r in runs]
        rows.append(
            [
                label,
                level_cell(runs, LEVELS[0], "stay", "seconds"),
                level_cell(runs, LEVELS[0], "stay", "step"),
                level_cell(runs, LEVELS[1], "stay", "seconds"),
                f"{statistics.median(finals):.4f}",
                f"{statistics.median(r['eval_seconds'] for r in runs):.1f}",
            ]
        )
    notes = f"""
Seconds of training (evaluation excluded) until the validation MSE on the fixed seeded set
(32 images of each of 16 types, seed {EVAL_SEED}) reaches the level and stays at or below it to
the end of the run; median (min–max) over seeds {args.seeds}; evaluation every
{args.eval_every} steps. Freckles model unchanged, fresh 16-type noise every step, bf16
autocast, fused Adam.
"""
    print(
        write_section(
            "quality",
            "Time to quality on the GPU",
            ["recipe", "s to ≤ 0.0075", "steps", "s to ≤ 0.0035", "final MSE", "eval s"],
            rows,
            notes,
            prov=prov,
            raw=display_path(args.json) if args.json else None,
        )
    )


if __name__ == "__main__":
    main()
