"""The shipped GLFM, SVAE-transformer and CV-battery defaults: each codebook beside its null and
controls, and codebooks of two producers trained on the same data aligned (docs/producers-ii.md).

Usage: python experiments/producers_ii_align.py SEED1_DIR [--out PATH] [--null-trials 300]
       [--pair-trials 16]

SEED1_DIR holds the seed-1 twins of the defaults (``python experiments/train_producers_ii.py
SEED1_DIR --seed 1``). Every codebook is the ``geolip codebook extract`` one (mean rows,
antipodal threshold −0.9, seed 0) with its i.i.d. rows null and controls; GLFM's anchors are
``--method anchors``. Each pair is aligned by ``Codebook.align`` (what ``geolip codebook align``
runs): the RMS chordal distance after projective alignment with unknown matching and signs,
beside the same distance for ``--pair-trials`` pairs of i.i.d. codebooks of the same K, K′, D.
Writes JSON to ``--out`` and prints the tables as markdown.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import date
from pathlib import Path
from typing import Any

import torch
from producers_ii import codebook_summary

from geolip.codebook import Codebook
from geolip.producers.anchor_codebook import anchor_codebook
from geolip.producers.extract import extract_codebook
from geolip.producers.loading import load_producer

SEED = 0
ANCHORS = "anchors"
CALIBRATIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "h2-gaussian": ("gaussian", {}),
    "svae-gaussian": ("gaussian", {}),
    "cv-battery-noise": ("sixteen_noise", {"size": 32}),
    "glfm-shapes": ("shapes:n=64,size=32,seed=1", {}),
}
"""Each default's calibration: the data it was trained on (noise: 64 images of 64², or 32²)."""
PAIRS = (
    ("two families, same data", ("h2-gaussian", 0), ("svae-gaussian", 0), "mean"),
    ("one family, two seeds", ("svae-gaussian", 0), ("svae-gaussian", 1), "mean"),
    ("one family, two seeds", ("cv-battery-noise", 0), ("cv-battery-noise", 1), "mean"),
    ("one family, two seeds", ("glfm-shapes", 0), ("glfm-shapes", 1), "mean"),
    ("one family, two seeds", ("glfm-shapes", 0), ("glfm-shapes", 1), ANCHORS),
)


def source(name: str, seed: int, seed1_dir: Path) -> str:
    """Where the seed's producer is: shipped (seed 0) or in SEED1_DIR."""
    return f"pretrained:{name}" if seed == 0 else str(seed1_dir / name)


def codebook(name: str, seed: int, method: str, seed1_dir: Path, null_trials: int) -> Codebook:
    model = load_producer(source(name, seed, seed1_dir))
    if method == ANCHORS:
        return anchor_codebook(model, null_trials=null_trials, seed=SEED)
    calibration, options = CALIBRATIONS[name]
    return extract_codebook(model, calibration, seed=SEED, null_trials=null_trials, **options)


def aligned(a: Codebook, b: Codebook, trials: int) -> dict[str, Any]:
    """b aligned onto a, the distance beside the random-pair null."""
    res = a.align(b, null_trials=trials, seed=SEED)
    eye = torch.eye(a.dim, dtype=torch.float64)
    return {
        "dim": a.dim,
        "k": [a.size, b.size],
        "distance": res.rms_chordal,
        "null_mean": res.null_distance_mean,
        "null_sd": res.null_distance_std,
        "z": res.distance_z,
        "percentile": res.distance_percentile,
        "mean_residual_deg": res.mean_residual_deg,
        "residual_z": res.z_score,
        "verdict": res.verdict,
        "rotation_from_identity": float((res.rotation - eye).norm()),
    }


def markdown(doc: dict[str, Any]) -> str:
    lines = [
        "| codebook | D | axes (pairs) | deviation | null pct | untrained: dev (pct) | "
        "distance to untrained (null mean, pct) | other calibration: distance (pct) |",
        "|---|---:|---|---:|---:|---|---|---|",
    ]
    for key, cb in doc["codebooks"].items():
        controls = {c["name"]: c for c in cb["controls"]}
        u, o = controls["untrained"], controls.get("other_calibration")
        other = (
            "—"
            if o is None
            else f"{o['distance_to_observed']:.3f} ({o['distance_percentile']:.1f})"
        )
        lines.append(
            f"| {key} | {cb['dim']} | {cb['n_axes']} ({cb['n_pairs']}) | {cb['deviation']:+.4f} | "
            f"{cb['null_percentile']:.1f} | {u['deviation']:+.4f} ({u['null_percentile']:.1f}) | "
            f"{u['distance_to_observed']:.3f} ({u['distance_null_mean']:.3f}, "
            f"{u['distance_percentile']:.1f}) | {other} |"
        )
    lines += [
        "",
        f"| pair | codebooks | D | K | distance | null ({doc['environment']['pair_trials']} pairs) "
        "| z | pct | ‖R − I‖ | verdict |",
        "|---|---|---:|---|---:|---|---:|---:|---:|---|",
    ]
    for p in doc["pairs"]:
        lines.append(
            f"| {p['pair']} | {p['kind']} | {p['dim']} | {p['k'][0]} / {p['k'][1]} | "
            f"{p['distance']:.4f} | {p['null_mean']:.3f} ± {p['null_sd']:.3f} | {p['z']:+.1f} | "
            f"{p['percentile']:.1f} | {p['rotation_from_identity']:.3f} | {p['verdict']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("seed1_dir", type=Path)
    parser.add_argument("--out", type=Path, default=Path("experiments/out/producers_ii/align.json"))
    parser.add_argument("--null-trials", type=int, default=300)
    parser.add_argument("--pair-trials", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    books: dict[tuple[str, int, str], Codebook] = {}
    for _, *members, method in PAIRS:
        for name, seed in members:
            if (name, seed, method) not in books:
                books[name, seed, method] = codebook(
                    name, seed, method, args.seed1_dir, args.null_trials
                )
    doc: dict[str, Any] = {"codebooks": {}, "pairs": []}
    for (name, seed, method), cb in books.items():
        label = f"{name} seed {seed}" + (f" ({method})" if method == ANCHORS else "")
        calibration = cb.meta.extraction.calibration
        doc["codebooks"][label] = {
            "calibration": calibration,
            "dim": cb.dim,
            **codebook_summary(cb),
        }
    for pair, (a, sa), (b, sb), method in PAIRS:
        label = f"{a} seed {sa} vs {b} seed {sb}"
        kind = "anchors" if method == ANCHORS else CALIBRATIONS[a][0]
        entry = aligned(books[a, sa, method], books[b, sb, method], args.pair_trials)
        doc["pairs"].append({"pair": label, "prediction": pair, "kind": kind, **entry})
    doc["environment"] = {
        "device": f"{platform.machine()} CPU, 1 thread",
        "torch": torch.__version__,
        "date": date.today().isoformat(),
        "seed": SEED,
        "null_trials": args.null_trials,
        "pair_trials": args.pair_trials,
        "wall_seconds": time.perf_counter() - start,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(markdown(doc))


if __name__ == "__main__":
    main()
