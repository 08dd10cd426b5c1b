"""Anchor drift of a GLFM against lr × steps (docs/glfm.md).

Usage: python experiments/glfm_drift.py [--lrs 3e-4,1e-3,3e-3,1e-2] [--steps 600,600,600,200]
       [--every 50] [--seed 0] [--out experiments/out/glfm] [--figure docs/figures/glfm_drift.png]

Trains a small v4 GLFM (width 32, hidden 128, 64 anchors on S^15, 2 blocks; 32 × 32 procedural
shapes, batch 32) once per learning rate through the project's Trainer, at a constant lr (one
epoch: the cosine schedule steps only at epoch ends). Every ``--every`` steps it logs the
anchor-drift summary (quantiles, full histogram, the share within 0.05 rad of 0.29154); at the
end the validation velocity MSE, every anchor's drift and the anchor codebook beside its i.i.d.
rows null (300 trials) and its home control (distance null of 8 random pairs). Then it fits
log(median drift) = a + b·log(lr) + c·log(step) over all logged points: b = c means the drift is
a function of lr × steps alone. Writes ``drift.json`` under ``--out`` and the figure.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import torch

from geolip.producers.anchor_codebook import anchor_codebook
from geolip.producers.presets import build, train_config
from geolip.producers.train import Trainer
from geolip.solvers.anchor_drift import BINDING_CONSTANT, BINDING_TOLERANCE, drift_summary

MODEL = {"width": 32, "hidden": 128, "n_anchors": 64, "n_blocks": 2, "D": 16}
DATASET = "shapes:n=4000,size=32"
BATCH = 32


def run(lr: float, steps: int, every: int, seed: int, scratch: Path) -> dict[str, Any]:
    """Train one constant-lr run and log the drift every ``every`` steps."""
    model = build("glfm-v4", seed=seed, **MODEL)
    recipe = train_config(
        "glfm-v4",
        lr=lr,
        epochs=1,
        steps_per_epoch=steps,
        batch_size=BATCH,
        dataset=DATASET,
        eval_per_type=16,
        seed=seed,
    )
    trainer = Trainer(model, recipe, scratch / f"lr{lr:g}")  # no fit(): nothing is saved
    log, losses, start = [], [], time.perf_counter()
    while trainer.step < steps:
        losses.append(trainer.train_step().item())
        if trainer.step % every == 0 or trainer.step == steps:
            summary = drift_summary(model.constellation.drift())
            log.append(
                {
                    "step": trainer.step,
                    "lr_x_steps": lr * trainer.step,
                    "train_loss": float(np.mean(losses[-every:])),
                    "drift": summary.as_dict(),
                }
            )
            print(
                f"lr {lr:g} step {trainer.step}: loss {log[-1]['train_loss']:.4f} "
                f"median drift {summary.median:.4f} near {summary.near_fraction:.3f}",
                flush=True,
            )
    final = trainer.evaluate()
    cb = anchor_codebook(model, null_trials=300, seed=seed, distance_null_trials=8)
    q = cb.meta.quality
    (home,) = q.controls
    return {
        "anchor_codebook": {
            "id": cb.id,
            "axes": cb.size,
            "pairs": cb.meta.extraction.n_pairs,
            "deviation": q.deviation,
            "null_percentile": q.null.percentile,
            "null_deviation_mean": q.null.deviation_mean,
            "null_deviation_sd": q.null.deviation_sd,
            "effective_rank": q.effective_rank,
            "effective_rank_percentile": q.effective_rank_percentile,
            "home_deviation": home.deviation,
            "home_null_percentile": home.null_percentile,
            "home_distance": home.distance_to_observed,
            "home_distance_z": home.distance_z,
            "random_pair_distance_mean": home.distance_null_mean,
        },
        "lr": lr,
        "steps": steps,
        "seconds": time.perf_counter() - start,
        "log": log,
        "validation": {k: v for k, v in final.items() if k != "anchor_drift"},
        "final_drift": final["anchor_drift"],
        "final_angles": model.constellation.drift().tolist(),
        "n_parameters": sum(p.numel() for p in model.parameters()),
    }


def fit_exponents(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Least squares log(median drift) = a + b·log(lr) + c·log(step) over every logged point."""
    rows = [(r["lr"], p["step"], p["drift"]["median"]) for r in runs for p in r["log"]]
    lr, step, median = (np.array(col, dtype=np.float64) for col in zip(*rows, strict=True))
    design = np.stack([np.ones_like(lr), np.log(lr), np.log(step)], axis=1)
    coef, *_ = np.linalg.lstsq(design, np.log(median), rcond=None)
    fitted = design @ coef
    r2 = 1 - np.sum((np.log(median) - fitted) ** 2) / np.sum(
        (np.log(median) - np.log(median).mean()) ** 2
    )
    return {"a": coef[0], "b_lr": coef[1], "c_steps": coef[2], "r2": r2, "points": len(rows)}


def figure(runs: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax0, ax1, ax2) = plt.subplots(1, 3, figsize=(15, 4.2))
    band = (BINDING_CONSTANT - BINDING_TOLERANCE, BINDING_CONSTANT + BINDING_TOLERANCE)
    for r in runs:
        x = [p["lr_x_steps"] for p in r["log"]]
        med = [p["drift"]["median"] for p in r["log"]]
        lo = [p["drift"]["p5"] for p in r["log"]]
        hi = [p["drift"]["p95"] for p in r["log"]]
        (line,) = ax0.plot(x, med, marker="o", ms=3, label=f"lr {r['lr']:g}")
        ax0.fill_between(x, lo, hi, color=line.get_color(), alpha=0.15)
        ax1.plot(x, [p["drift"]["near_fraction"] for p in r["log"]], marker="o", ms=3)
        ax2.hist(r["final_angles"], bins=40, histtype="step", label=f"lr {r['lr']:g}")
    ax0.axhspan(*band, color="grey", alpha=0.2)
    ax2.axvspan(*band, color="grey", alpha=0.2)
    from matplotlib.ticker import NullFormatter

    ax0.set(xscale="log", yscale="log", xlabel="lr × steps", ylabel="anchor drift (rad)")
    ax0.set_title("median drift, p5–p95 band; grey: 0.29154 ± 0.05")
    ax0.legend()
    ax1.set(xscale="log", xlabel="lr × steps", ylabel="share of anchors", ylim=(-0.02, 1.02))
    ax1.set_title("share within 0.05 rad of 0.29154")
    for ax in (ax0, ax1):
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax0.yaxis.set_minor_formatter(NullFormatter())
    ax2.set(xlabel="drift at the end of the run (rad)", ylabel="anchors")
    ax2.set_title("final drift histograms")
    ax2.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lrs", default="3e-4,1e-3,3e-3,1e-2")
    parser.add_argument("--steps", default="600,600,600,200")
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("experiments/out/glfm"))
    parser.add_argument("--figure", type=Path, default=Path("docs/figures/glfm_drift.png"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lrs = [float(v) for v in args.lrs.split(",")]
    steps = [int(v) for v in args.steps.split(",")]
    runs = [
        run(lr, n, args.every, args.seed, args.out / "scratch")
        for lr, n in zip(lrs, steps, strict=True)
    ]
    doc = {
        "command": "python experiments/glfm_drift.py "
        + " ".join(f"--{k} {v}" for k, v in vars(args).items()),
        "date": date.today().isoformat(),
        "device": f"{platform.machine()} CPU, {torch.get_num_threads()} thread(s), "
        f"torch {torch.__version__}",
        "model": {"preset": "glfm-v4", **MODEL},
        "dataset": DATASET,
        "batch_size": BATCH,
        "seed": args.seed,
        "fit": fit_exponents(runs),
        "runs": runs,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "drift.json").write_text(json.dumps(doc, indent=1) + "\n")
    figure(runs, args.figure)
    print(json.dumps(doc["fit"], indent=1))


if __name__ == "__main__":
    main()
