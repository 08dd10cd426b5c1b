"""Validation MSE and codebooks-beside-their-nulls for trained producers (docs/results.md).

Usage: python experiments/producer_results.py SOURCE [SOURCE ...] [--json OUT.json]

Each SOURCE is anything :func:`geolip.producers.loading.load_producer` takes
(``pretrained:NAME``, a checkpoint folder). For each producer this prints the validation MSE per
noise type on a fixed seeded set (32 images per type, 64×64, seed 10,000 as the trainer's eval)
and, for the calibrations ``sixteen_noise`` and ``gaussian`` (n = 64, seed 0), the extracted
codebook beside the i.i.d. rows null (300 trials), the untrained network and shuffled
calibration. Runs on the CPU.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from geolip.data.noise import TRAINING_NOISES, noise_batch
from geolip.producers.extract import extract_codebook
from geolip.producers.loading import load_producer

CALIBRATIONS = ("sixteen_noise", "gaussian")


@torch.no_grad()
def validation_mse(model: torch.nn.Module, per_type: int = 32, size: int = 64) -> dict[str, float]:
    """MSE per training noise type on a fixed seeded set (the trainer's eval recipe)."""
    gen = torch.Generator().manual_seed(10_000)
    out = {}
    for kind in TRAINING_NOISES:
        x = noise_batch(kind, per_type, size, generator=gen)
        out[kind] = torch.nn.functional.mse_loss(model(x)["recon"], x).item()
    return out


def codebook_report(model: torch.nn.Module, calibration: str) -> dict[str, Any]:
    """Extraction statistics beside the i.i.d. null and both controls."""
    cb = extract_codebook(model, calibration, n=64, seed=0)
    q, ex = cb.meta.quality, cb.meta.extraction
    report: dict[str, Any] = {
        "codebook_id": cb.id,
        "n_axes": cb.size,
        "n_pairs": ex.n_pairs,
        "deviation": q.deviation,
        "statute": q.statute,
        "null_percentile": q.null.percentile,
        "null_deviation": [q.null.deviation_mean, q.null.deviation_sd],
        "null_pairs_mean": q.null.pairs_mean,
        "null_pairs_percentile": q.null.pairs_percentile,
    }
    for c in q.controls:
        report[c.name] = {
            "n_pairs": c.n_pairs,
            "n_axes": c.n_axes,
            "deviation": c.deviation,
            "null_percentile": c.null_percentile,
            "distance_to_observed": c.distance_to_observed,
        }
    return report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("sources", nargs="+")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.manual_seed(0)
    results = {}
    for source in args.sources:
        model = load_producer(source).eval()
        mse = validation_mse(model)
        results[source] = {
            "params": sum(p.numel() for p in model.parameters()),
            "readout": model.config.readout,
            "mse_mean": sum(mse.values()) / len(mse),
            "mse_per_type": mse,
            "codebooks": {cal: codebook_report(model, cal) for cal in CALIBRATIONS},
        }
        r = results[source]
        print(f"{source}: {r['params']:,} params, mean val MSE {r['mse_mean']:.3e}", flush=True)
        for cal, c in r["codebooks"].items():
            print(
                f"  {cal:>13}: {c['n_pairs']} pairs / {c['n_axes']} axes, dev {c['deviation']:+.4f}"
                f" (null {c['null_deviation'][0]:+.4f} ± {c['null_deviation'][1]:.4f}, "
                f"pct {c['null_percentile']:.0f}, null pairs {c['null_pairs_mean']:.2f}, "
                f"pairs pct {c['null_pairs_percentile']:.0f}); untrained "
                f"{c['untrained']['n_pairs']} pairs dev {c['untrained']['deviation']:+.4f}; "
                f"shuffled {c['shuffled_calibration']['n_pairs']} pairs dev "
                f"{c['shuffled_calibration']['deviation']:+.4f}",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
