"""The nulls behind the statistics of docs/results.md that were first reported without one.

Usage: python experiments/results_nulls.py [--json docs/pretrained/results-nulls.json]

Reads docs/pretrained/producer-results.json (codebook sizes and control distances) and, with no
model needed, computes (1) the distance null of every trained-vs-control distance: RMS chordal
distance after projective alignment between two i.i.d. uniform codebooks of the same K and D;
(2) the row-spectrum null of the training metrics erank and S0/SD for V i.i.d. unit rows in R^D
at Freckles' V 48, D 4. Deterministic under its seeds; runs on the CPU.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from geolip.solvers.alignment import distance_null, distance_percentile, distance_z_score
from geolip.solvers.null import row_spectrum_null

ROOT = Path(__file__).resolve().parents[1]
TRIALS = 64
CONTROLS = ("untrained", "shuffled_calibration")


def distance_nulls(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for source, entry in results.items():
        for calibration, cb in entry["codebooks"].items():
            for control in CONTROLS:
                c = cb[control]
                null = distance_null(cb["n_axes"], c["n_axes"], 4, null_trials=TRIALS, seed=0)
                mean, sd = float(null.mean()), float(null.std())
                observed = c["distance_to_observed"]
                rows.append(
                    {
                        "source": source,
                        "calibration": calibration,
                        "control": control,
                        "k": [cb["n_axes"], c["n_axes"]],
                        "distance": observed,
                        "null_mean": mean,
                        "null_sd": sd,
                        "null_min": float(null.min()),
                        "null_max": float(null.max()),
                        "percentile": distance_percentile(observed, null),
                        "z": distance_z_score(observed, mean, sd),
                    }
                )
    return rows


def spectrum_null(v: int = 48, dim: int = 4) -> dict[str, Any]:
    null = row_spectrum_null(v, dim, n_matrices=512, n_trials=64, seed=0)
    return {
        "V": v,
        "D": dim,
        "n_matrices": null.n_matrices,
        "n_trials": null.n_trials,
        "erank_mean": float(np.mean(null.effective_rank)),
        "erank_sd": float(np.std(null.effective_rank)),
        "s0_sd_mean": float(np.mean(null.s0_over_sd)),
        "s0_sd_sd": float(np.std(null.s0_over_sd)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = json.loads((ROOT / "docs" / "pretrained" / "producer-results.json").read_text())
    doc = {"trials": TRIALS, "distances": distance_nulls(results), "row_spectrum": spectrum_null()}
    text = json.dumps(doc, indent=2) + "\n"
    if args.json:
        args.json.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
