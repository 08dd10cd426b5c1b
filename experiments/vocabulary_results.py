"""Measurements of docs/vocabulary.md: k-means extraction beside its null, the OMEGA §4
predictions with ``project`` + ``align``, and the image tokenizer against k-means VQ and a
random codebook.

Usage: python experiments/vocabulary_results.py [--out DIR] [--producers DIR] [--quick]

Data: shapes (512 training scenes, seed 0; 64 test scenes, seed 1; 64 × 64, standardised).
Producers: pretrained:h2-gaussian and pretrained:freckles. Seeds 0 everywhere.

--producers: a folder with h2-seedS/ producers (experiments/vocabulary_producers.py) for the
cross-model prediction; without it that part compares only the shipped producers' seeds it has.
Writes DIR/results.json (default experiments/out/vocabulary), the figure
docs/figures/vocabulary_tokenizer_shapes.png, and prints markdown tables on stdout.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

from geolip import Codebook
from geolip.data import open_dataset
from geolip.downstream.token_files import image_grid_png, usage_report, write_png
from geolip.downstream.tokenizer import GeolipImageTokenizer
from geolip.downstream.tokenizer_baselines import KMeansPatchVQ
from geolip.producers.calibration import calibration_images
from geolip.producers.extract import extract_codebook
from geolip.producers.extract_kmeans import extract_kmeans_codebook
from geolip.producers.loading import load_producer
from geolip.solvers.alignment import distance_null, distance_z_score
from geolip.solvers.primitives import project
from geolip.solvers.projective_kmeans import usage_perplexity

ROOT = Path(__file__).resolve().parent.parent
FIGURE = ROOT / "docs" / "figures" / "vocabulary_tokenizer_shapes.png"
SEED = 0
TRAIN = "shapes:n=512,size=64,seed=0"
TEST = "shapes:n=64,size=64,seed=1"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# part 1: k-means extraction beside its null ------------------------------------------------
def kmeans_extraction(producers: dict[str, Any], k: int, null_trials: int) -> list[dict]:
    out = []
    for name, producer in producers.items():
        for calibration in ("shapes:n=64,size=64", "gaussian"):
            start = time.perf_counter()
            cb = extract_kmeans_codebook(
                producer,
                calibration,
                k,
                restarts=2,
                max_iter=50,
                null_trials=null_trials,
                quality_null_trials=100,
                seed=SEED,
            )
            report = cb.meta.extra["kmeans"]
            q = cb.meta.quality
            out.append(
                {
                    "producer": name,
                    "calibration": calibration,
                    "k": k,
                    "rows": report["rows"],
                    "fitted_rows": report["fitted_rows"],
                    "objective": report["objective"],
                    "perplexity": report["perplexity"],
                    "deviation": q.deviation,
                    "deviation_percentile": q.null.percentile,
                    "seconds": time.perf_counter() - start,
                }
            )
            log(
                f"kmeans {name} {calibration}: {report['objective']['observed']:.4f} "
                f"(null {report['objective']['null_mean']:.4f})"
            )
    return out


# part 2: the §4 predictions ------------------------------------------------------------------
def _distance(a: torch.Tensor, b: torch.Tensor, trials: int) -> dict[str, float | None]:
    ca, cb = Codebook.from_axes(a), Codebook.from_axes(b)
    res = ca.align(cb, null_trials=0)
    null = distance_null(ca.size, cb.size, ca.dim, null_trials=trials, seed=SEED)
    eye = torch.eye(ca.dim, dtype=torch.float64)
    return {
        "distance": res.rms_chordal,
        "null_mean": float(null.mean()),
        "null_sd": float(null.std()),
        "z": distance_z_score(res.rms_chordal, float(null.mean()), float(null.std())),
        "rotation_from_identity": float((res.rotation - eye).norm()),
        "k_a": ca.size,
        "k_b": cb.size,
    }


def _codebooks(producer: Any, calibration: str, k: int) -> dict[str, torch.Tensor]:
    """The mean codebook and the k-means codebook (``project``) of one calibration."""
    mean = extract_codebook(producer, calibration, seed=SEED, null_trials=20, controls=False)
    images, _ = calibration_images(calibration, producer.geometry.channels, seed=SEED)
    with producer.frozen():
        fit = project(
            images, producer.encode_rows, k, seed=SEED, restarts=2, max_iter=50, max_rows=65_536
        )
    return {"mean": mean.axes, "kmeans": fit.centroids}


def predictions(producers: dict[str, Any], k: int, trials: int) -> list[dict]:
    rows = []
    same = [("gaussian", "sixteen_noise"), ("shapes:n=64,size=64", "photos:tile=64,n=64")]
    books: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for name, producer in producers.items():
        for calibration in {c for pair in same for c in pair}:
            books[name, calibration] = _codebooks(producer, calibration, k)
    for name in producers:
        for a, b in same:
            for method in ("mean", "kmeans"):
                d = _distance(books[name, a][method], books[name, b][method], trials)
                rows.append(
                    {
                        "prediction": "same producer, two calibrations (< 0.1)",
                        "pair": f"{name}: {a} vs {b}",
                        "method": method,
                        **d,
                    }
                )
    names = list(producers)
    h2s = [n for n in names if n.startswith("h2")]
    for i, first in enumerate(h2s):
        for second in h2s[i + 1 :]:
            for calibration in ("gaussian", "shapes:n=64,size=64"):
                for method in ("mean", "kmeans"):
                    d = _distance(
                        books[first, calibration][method],
                        books[second, calibration][method],
                        trials,
                    )
                    rows.append(
                        {
                            "prediction": "two producers, same data (< 0.3)",
                            "pair": f"{first} vs {second} on {calibration}",
                            "method": method,
                            **d,
                        }
                    )
    if "h2-gaussian" in producers and "freckles" in producers:
        for method in ("mean", "kmeans"):
            d = _distance(
                books["h2-gaussian", "gaussian"][method],
                books["freckles", "gaussian"][method],
                trials,
            )
            rows.append(
                {
                    "prediction": "two architectures (no prediction)",
                    "pair": "h2-gaussian vs freckles on gaussian",
                    "method": method,
                    **d,
                }
            )
    return rows


# part 3: the tokenizer ---------------------------------------------------------------------
def psnr_mse(original: torch.Tensor, decoded: torch.Tensor) -> dict[str, float]:
    """MSE over every pixel (standardised images: predicting 0 gives 1.0) and the mean
    per-image PSNR with peak = that image's own max − min."""
    err = (decoded - original).square().flatten(1).mean(dim=1)
    peak = original.flatten(1).amax(dim=1) - original.flatten(1).amin(dim=1)
    psnr = 10 * torch.log10(peak.square() / err.clamp(min=1e-12))
    return {"mse": float(err.mean()), "psnr": float(psnr.mean())}


def tokenizer_row(tok: GeolipImageTokenizer, test: torch.Tensor, label: dict) -> tuple:
    """One tokenizer on the test images → (its table row, the decoded images)."""
    ids = tok(test, return_tensors="pt")["input_ids"]
    decoded = torch.stack(tok.batch_decode(ids))
    usage = usage_report(tok, ids)
    row = {
        **label,
        "vocab_size": tok.vocab_size,
        "tokens_per_image": int(ids.shape[1]),
        "bits_per_image": ids.shape[1] * math.log2(tok.vocab_size),
        **psnr_mse(test, decoded),
        "perplexity": usage["perplexity"],
        "axes_used": usage["axes_used"],
        "token_perplexity": usage_perplexity(
            torch.bincount(  # of the 2K signed axis ids
                ids[ids < 2 * tok.codebook.size], minlength=2 * tok.codebook.size
            )
        ),
    }
    return row, decoded


def continuous_row(name: str, producer: Any, test: torch.Tensor) -> tuple[dict, torch.Tensor]:
    """The producer's own reconstruction of ``test`` from unquantised rows: the ceiling of any
    row tokenizer. → (table row, reconstructions)."""
    with producer.frozen():
        recon = producer.reconstruct(test)
    row = {
        "method": "continuous rows (no quantisation)",
        "producer": name,
        "tokens_per_image": None,
        **psnr_mse(test, recon),
    }
    return row, recon


def tokenizer_study(
    producers: dict[str, Any], ks: list[int], top_ks: list[int], vq_sizes: list[int]
) -> tuple[list[dict], dict[str, torch.Tensor]]:
    train = open_dataset(TRAIN).images
    test = open_dataset(TEST).images
    rows: list[dict] = []
    pictures: dict[str, torch.Tensor] = {"original": test[:8]}
    for name, producer in producers.items():
        row, recon = continuous_row(name, producer, test)
        rows.append(row)
        pictures[f"{name} continuous"] = recon[:8]
        books: dict[str, Codebook] = {}
        for k in ks:
            books[f"kmeans K={k}"] = extract_kmeans_codebook(
                producer,
                TRAIN,
                k,
                restarts=2,
                max_iter=50,
                null_trials=2,
                quality_null_trials=20,
                seed=SEED,
            )
            books[f"random K={k}"] = Codebook.random(k, producer.geometry.D, seed=SEED)
        mean = extract_codebook(
            producer, "sixteen_noise", seed=SEED, null_trials=20, controls=False
        )
        books[f"mean (sixteen_noise) K={mean.size}"] = mean
        books[f"random K={mean.size}"] = Codebook.random(mean.size, producer.geometry.D, seed=SEED)
        for label, cb in books.items():
            for top_k in top_ks:
                if top_k > cb.size:
                    continue
                start = time.perf_counter()
                tok = GeolipImageTokenizer(producer, cb, top_k).calibrated(train[:64])
                row, decoded = tokenizer_row(
                    tok,
                    test,
                    {"method": f"geolip {label}", "producer": name, "top_k": top_k, "K": cb.size},
                )
                row["seconds"] = time.perf_counter() - start
                rows.append(row)
                log(f"{name} {label} k={top_k}: psnr {row['psnr']:.2f} mse {row['mse']:.4f}")
                if top_k == 1 and label in (f"kmeans K={max(ks)}", f"random K={max(ks)}"):
                    pictures[f"{name} geolip {label} top-1"] = decoded[:8]
    for k in ks:
        for s in vq_sizes:
            start = time.perf_counter()
            vq = KMeansPatchVQ(train, s, 2 * k, SEED, max_vectors=50_000)
            codes = vq.codes(test)
            decoded = vq.decode(codes, tuple(test.shape[-2:]))
            gh = test.shape[-2] // s
            rows.append(
                {
                    "method": f"k-means VQ, {s}×{s} patches",
                    "producer": None,
                    "K": 2 * k,
                    "vocab_size": 2 * k + 4,
                    "tokens_per_image": 2 + gh + codes.shape[1],
                    "bits_per_image": (2 + gh + codes.shape[1]) * math.log2(2 * k + 4),
                    **psnr_mse(test, decoded),
                    "perplexity": usage_perplexity(
                        torch.bincount(codes.flatten(), minlength=2 * k)
                    ),
                    "seconds": time.perf_counter() - start,
                }
            )
            log(f"VQ s={s} codes={2 * k}: psnr {rows[-1]['psnr']:.2f}")
            if k == max(ks):
                pictures[f"VQ {s}x{s}, {2 * k} codes"] = decoded[:8]
    return rows, pictures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=ROOT / "experiments" / "out" / "vocabulary")
    parser.add_argument("--producers", type=Path, default=None)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(SEED)
    producers: dict[str, Any] = {
        "h2-gaussian": load_producer("pretrained:h2-gaussian"),
        "freckles": load_producer("pretrained:freckles"),
    }
    others: dict[str, Any] = {}
    if args.producers is not None:
        for folder in sorted(args.producers.glob("h2-seed*")):
            others[folder.name] = load_producer(folder)
    start = time.perf_counter()
    results: dict[str, Any] = {
        "command": " ".join(sys.argv),
        "device": f"{platform.machine()} CPU, {torch.get_num_threads()} threads, torch "
        f"{torch.__version__}",
        "date": datetime.date.today().isoformat(),
        "seed": SEED,
    }
    quick = args.quick
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    results["kmeans_extraction"] = kmeans_extraction(producers, 64, 2 if quick else 6)
    seconds["kmeans_extraction"], t = time.perf_counter() - t, time.perf_counter()
    results["predictions"] = predictions({**producers, **others}, 32, 8 if quick else 16)
    seconds["predictions"], t = time.perf_counter() - t, time.perf_counter()
    rows, pictures = tokenizer_study(
        producers,
        [16, 256] if quick else [16, 64, 256],
        [1, 2] if quick else [1, 2, 4],
        [2, 4] if quick else [1, 2, 4, 8],
    )
    seconds["tokenizer"] = time.perf_counter() - t
    results["tokenizer"] = rows
    results["part_seconds"] = seconds
    results["seconds"] = time.perf_counter() - start
    (args.out / "results.json").write_text(json.dumps(results, indent=2, default=float) + "\n")
    write_png(FIGURE, image_grid_png(list(pictures.values()), list(pictures)))
    print(json.dumps(results, indent=2, default=float))


if __name__ == "__main__":
    main()
