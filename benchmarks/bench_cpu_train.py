"""Sphere-solver training on the CPU: the h2 preset's step rate and its time to quality.

Two measurements, each on ``--threads`` pinned threads (default 2):

- ``rate``: patches per second of one training step of the h2 preset (V = 32, D = 4, linear
  readout, one cross-attention layer; 57,215 parameters) at batch 32 of 64 × 64 gaussian
  noise (256 patches an image). Variants, timed in interleaved rounds (median of rounds):
  the baseline is a bare PyTorch loop over the same model (``model(x)["recon"]``, MSE,
  ``torch.optim.Adam``, one fixed batch); then geolip's ``Trainer`` step on that fixed batch,
  on fresh noise every step, and with the encoder and decoder under ``torch.compile``.
- ``quality``: seconds of training (evaluation excluded) until the validation MSE on a fixed
  seeded set of 256 gaussian 64 × 64 images reaches ``--level`` (0.003) and stays at or below
  it to the end of the run, per recipe and seed. With ``--parallel`` the runs go to separate
  processes, each pinned to its own ``--threads`` cores (``os.sched_setaffinity``), as many
  at once as the machine has spare cores; they share memory bandwidth and caches, and the
  raw JSON records which cores each used.

Usage: python benchmarks/bench_cpu_train.py rate [--threads 2] [--rounds 5] [--steps 20]
       python benchmarks/bench_cpu_train.py quality [--recipes 'a;b'] [--seeds 0,1,2]
              [--parallel] [--json F] [--no-doc]
"""

from __future__ import annotations

from timing import export_thread_env

THREADS = export_thread_env(default=2)  # before torch is imported

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402
from bench_quality import level_cell, reached  # noqa: E402
from timing import (  # noqa: E402
    close_provenance,
    display_path,
    pin_threads,
    provenance,
    write_section,
)

from geolip.data.noise import noise_batch  # noqa: E402
from geolip.producers.presets import get_preset, train_config  # noqa: E402
from geolip.producers.sphere_solver import SphereSolver  # noqa: E402
from geolip.producers.train import Trainer  # noqa: E402

BATCH, SIZE = 32, 64
PATCHES_PER_IMAGE = (SIZE // 4) ** 2
RATE_GOAL = 150_000
LEVEL = 0.003
EVAL_SEED, EVAL_IMAGES = 10_000, 256

RECIPES: dict[str, dict[str, Any]] = {
    "h2 preset recipe (lr 1e-3, cosine per epoch)": {"steps": 900},
    "lr 2e-3, warm-up 50, cosine 600": {
        "lr": 2e-3,
        "lr_schedule": "warmup-cosine",
        "warmup_steps": 50,
        "steps": 600,
    },
    "lr 3e-3, warm-up 50, cosine 600": {
        "lr": 3e-3,
        "lr_schedule": "warmup-cosine",
        "warmup_steps": 50,
        "steps": 600,
    },
    "lr 3e-3, warm-up 50, cosine 900": {
        "lr": 3e-3,
        "lr_schedule": "warmup-cosine",
        "warmup_steps": 50,
        "steps": 900,
    },
    "lr 5e-3, warm-up 100, cosine 900": {
        "lr": 5e-3,
        "lr_schedule": "warmup-cosine",
        "warmup_steps": 100,
        "steps": 900,
    },
    "batch 16, lr 3e-3, warm-up 50, cosine 1200": {
        "lr": 3e-3,
        "batch_size": 16,
        "lr_schedule": "warmup-cosine",
        "warmup_steps": 50,
        "steps": 1200,
    },
    "batch 16, lr 3e-3, warm-up 50, cosine 1500": {
        "lr": 3e-3,
        "batch_size": 16,
        "lr_schedule": "warmup-cosine",
        "warmup_steps": 50,
        "steps": 1500,
    },
}


def h2(seed: int) -> SphereSolver:
    torch.manual_seed(seed)
    return SphereSolver(get_preset("h2").model, preset="h2")


def trainer_for(model: SphereSolver, seed: int = 0, **overrides: Any) -> Trainer:
    """geolip's Trainer with the h2 recipe at batch 32 on gaussian noise (``overrides`` on top)."""
    settings = {"batch_size": BATCH, "img_size": SIZE, "noises": ("gaussian",), **overrides}
    if settings.get("lr_schedule") == "warmup-cosine":  # the cosine ends at the last step
        settings.update(epochs=1, steps_per_epoch=settings.pop("steps"))
    settings.pop("steps", None)
    out = Path(tempfile.mkdtemp(prefix="bench_cpu_train_"))
    return Trainer(model, train_config("h2", seed=seed, **settings), out, device="cpu")


# --------------------------------------------------------------------------------- rate
def bare_loop() -> Callable[[], None]:
    """The baseline: the same model and batch in a plain PyTorch loop."""
    model = h2(0).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = noise_batch("gaussian", BATCH, SIZE, generator=torch.Generator().manual_seed(0))

    def step() -> None:
        loss = torch.nn.functional.mse_loss(model(x)["recon"], x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def trainer_step(noise: str, compiled: bool = False) -> Callable[[], None]:
    """geolip's Trainer step: on one fixed batch (``noise="fixed"``) or fresh noise."""
    model = h2(0)
    if compiled:
        model._encode = torch.compile(model._encode)
        model._decode = torch.compile(model._decode)
    trainer = trainer_for(model)
    if noise == "fresh":
        return lambda: trainer.train_step()
    x = noise_batch("gaussian", BATCH, SIZE, generator=torch.Generator().manual_seed(0))
    return lambda: trainer.optimisation_step(x)


RATE_VARIANTS: dict[str, Callable[[], Callable[[], None]]] = {
    "bare PyTorch loop, fixed batch (baseline)": bare_loop,
    "Trainer step, fixed batch": lambda: trainer_step("fixed"),
    "Trainer step, fresh noise every step": lambda: trainer_step("fresh"),
    "Trainer step + compile, fresh noise": lambda: trainer_step("fresh", compiled=True),
}


def rate(rounds: int, steps: int) -> dict[str, Any]:
    """Patches/s of each variant: warm-up, then ``rounds`` interleaved rounds of ``steps``."""
    steps_fns, results = {}, {}
    for label, make in RATE_VARIANTS.items():
        try:
            fn = make()
            for _ in range(5):  # warm-up (and, compiled, compilation)
                fn()
            steps_fns[label] = fn
        except Exception as err:  # a failed variant is reported, not hidden
            results[label] = f"failed: {type(err).__name__}: {str(err)[:100]}"
    seconds: dict[str, list[float]] = {label: [] for label in steps_fns}
    for _ in range(rounds):
        for label, fn in steps_fns.items():
            start = time.perf_counter()
            for _ in range(steps):
                fn()
            seconds[label].append((time.perf_counter() - start) / steps)
    for label, times in seconds.items():
        per_step = statistics.median(times)
        results[label] = {
            "patches_per_s": BATCH * PATCHES_PER_IMAGE / per_step,
            "ms_per_step": 1e3 * per_step,
            "ms_per_step_rounds": [1e3 * t for t in times],
        }
        print(label, f"{results[label]['patches_per_s']:,.0f} patches/s", flush=True)
    return results


def rate_section(results: dict[str, Any], args: argparse.Namespace, prov: dict) -> str:
    base = results[next(iter(RATE_VARIANTS))]
    rows = []
    for label, value in results.items():
        if isinstance(value, str):
            rows.append([label, value, "", "", ""])
            continue
        rows.append(
            [
                label,
                f"{value['patches_per_s']:,.0f}",
                f"{value['ms_per_step']:.1f}",
                f"{value['patches_per_s'] / base['patches_per_s']:.2f}×",
                f"{value['patches_per_s'] / RATE_GOAL:.2f}",
            ]
        )
    notes = f"""
Patches per second of one training step of the h2 preset (57,215 parameters) at batch
{BATCH} of {SIZE} × {SIZE} gaussian noise ({BATCH * PATCHES_PER_IMAGE:,} patches a step) on
{THREADS} pinned threads; median of {args.rounds} interleaved rounds of {args.steps} steps after
5 warm-up steps. "vs bare": over a plain PyTorch loop on the same model and batch. "of goal":
over {RATE_GOAL:,} patches/s.
"""
    return write_section(
        "cpu-train",
        "h2 training step on the CPU",
        ["variant", "patches/s", "ms/step", "vs bare", "of goal"],
        rows,
        notes,
        prov=prov,
        raw=display_path(args.json) if args.json else None,
    )


# ------------------------------------------------------------------------------ quality
def validation_set() -> torch.Tensor:
    gen = torch.Generator().manual_seed(EVAL_SEED)
    return noise_batch("gaussian", EVAL_IMAGES, SIZE, generator=gen)


@torch.no_grad()
def validation_mse(model: torch.nn.Module, images: torch.Tensor) -> float:
    model.eval()
    mse = torch.stack(
        [torch.nn.functional.mse_loss(model(x)["recon"], x) for x in images.split(64)]
    ).mean()
    model.train()
    return mse.item()


def quality_run(recipe: dict[str, Any], seed: int, eval_every: int) -> dict[str, Any]:
    """One run of a recipe from a seed: its validation curve and when it reached LEVEL."""
    trainer = trainer_for(h2(seed), seed=seed, **recipe)
    images = validation_set()
    curve, trained, evaluating = [], 0.0, 0.0
    start = time.perf_counter()
    for step in range(1, recipe["steps"] + 1):
        trainer.train_step()
        if step % eval_every == 0 or step == recipe["steps"]:
            now = time.perf_counter()
            trained += now - start
            curve.append(
                {"step": step, "seconds": trained, "mse": validation_mse(trainer.model, images)}
            )
            start = time.perf_counter()
            evaluating += start - now
    return {
        "seed": seed,
        "steps": recipe["steps"],
        "train_seconds": trained,
        "eval_seconds": evaluating,
        "final_mse": curve[-1]["mse"],
        "levels": {str(LEVEL): reached(curve, LEVEL)},
        "curve": curve,
    }


def quality(labels: list[str], seeds: list[int], eval_every: int, parallel: bool) -> dict:
    """Every (recipe, seed) run; with ``parallel``, in pinned child processes at once."""
    jobs = [(label, seed) for label in labels for seed in seeds]
    if not parallel:
        return {
            label: [quality_run(RECIPES[label], s, eval_every) for s in seeds] for label in labels
        }
    cores = sorted(os.sched_getaffinity(0))
    slots = [cores[i : i + THREADS] for i in range(0, len(cores) - THREADS + 1, THREADS)]
    results: dict[str, list[dict]] = {label: [] for label in labels}
    with tempfile.TemporaryDirectory() as tmp:
        while jobs:
            batch, jobs = jobs[: len(slots)], jobs[len(slots) :]
            running = []
            for (label, seed), slot in zip(batch, slots, strict=False):
                out = Path(tmp) / f"{len(running)}.json"
                cmd = [sys.executable, __file__, "quality-run", "--threads", str(THREADS),
                       "--recipe", label, "--seed", str(seed), "--eval-every", str(eval_every),
                       "--cores", ",".join(map(str, slot)), "--json", str(out)]  # fmt: skip
                running.append((label, out, subprocess.Popen(cmd)))
            for label, out, proc in running:
                if proc.wait() != 0:
                    sys.exit(f"quality run of {label!r} failed")
                results[label].append(json.loads(out.read_text()))
    return results


def quality_section(results: dict[str, list[dict]], args: argparse.Namespace, prov: dict) -> str:
    rows = []
    for label, runs in results.items():
        rows.append(
            [
                label,
                level_cell(runs, LEVEL, "stay", "seconds"),
                level_cell(runs, LEVEL, "stay", "step"),
                f"{statistics.median(r['final_mse'] for r in runs):.4f}",
                f"{statistics.median(r['train_seconds'] for r in runs):.1f}",
            ]
        )
    notes = f"""
Seconds of training (evaluation excluded) until the validation MSE on {EVAL_IMAGES} gaussian
{SIZE} × {SIZE} images (seed {EVAL_SEED}) reaches {LEVEL} and stays at or below it to the end
of the run; median (min–max) over seeds {args.seeds}; evaluation every {args.eval_every} steps.
h2 model (the quickstart's), gaussian noise fresh every step, batch {BATCH} unless the recipe
says otherwise, {THREADS} pinned threads per run
{"(runs in parallel, each on its own cores)" if args.parallel else "(runs one at a time)"}.
"""
    return write_section(
        "cpu-quality",
        "Time to quality on the CPU",
        ["recipe", f"s to ≤ {LEVEL}", "steps", "final MSE", "training s"],
        rows,
        notes,
        prov=prov,
        raw=display_path(args.json) if args.json else None,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("what", choices=["rate", "quality", "quality-run"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--recipes", default=None, help="recipe labels separated by ';'")
    parser.add_argument("--recipe", default=None, help="quality-run: one recipe")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--seed", type=int, default=0, help="quality-run: one seed")
    parser.add_argument("--eval-every", type=int, default=25)
    parser.add_argument("--parallel", action="store_true")
    parser.add_argument("--cores", default=None, help="quality-run: the cores to pin to")
    parser.add_argument("--json", default=None)
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    if args.cores:
        os.sched_setaffinity(0, {int(c) for c in args.cores.split(",")})
    pin_threads(THREADS)
    if args.what == "quality-run":
        found = quality_run(RECIPES[args.recipe], args.seed, args.eval_every)
        found["cores"] = args.cores
        Path(args.json).write_text(json.dumps(found))
        return
    prov = provenance(device="cpu")
    if args.what == "rate":
        results: Any = rate(args.rounds, args.steps)
        key = "patches_per_s"
    else:
        labels = list(RECIPES) if args.recipes is None else args.recipes.split(";")
        unknown = [label for label in labels if label not in RECIPES]
        if unknown:
            sys.exit(f"unknown recipes {unknown}; known: {list(RECIPES)}")
        seeds = [int(s) for s in args.seeds.split(",")]
        results = quality(labels, seeds, args.eval_every, args.parallel)
        key = "runs"
        for label, runs in results.items():
            print(
                label,
                [
                    (r["seed"], r["levels"][str(LEVEL)]["stay"], round(r["final_mse"], 5))
                    for r in runs
                ],
            )
    if args.json:
        data = {"provenance": close_provenance(prov), key: results}
        if args.what == "quality":
            data["recipes"] = RECIPES
        Path(args.json).write_text(json.dumps(data, indent=2))
    if args.no_doc:
        return
    section = rate_section if args.what == "rate" else quality_section
    print(section(results, args, prov))


if __name__ == "__main__":
    main()
