"""OOD validity (OMEGA §7) of a frozen producer: detection tables and the distance–MSE test.

In-distribution: the producer's training family. OOD groups (64 × 64):
  near-OOD noise   the 7 pointwise OOD noise types (log_normal, beta, weibull, gumbel,
                   rayleigh, shot, quantize): i.i.d. pixels like the training noise
  far-OOD noise    the 9 spatially structured OOD types (perlin, wavelet, fbm, gabor,
                   sine_composite, voronoi, jpeg_like, rings, spiral)
  other training   the training noise families the producer did not see
  amplitude ×½, ×2 the in-distribution noise scaled (a covariate shift of the training family)
  photos, MNIST (or digits), shapes   natural and drawn images, standardised per image
Per-image scores (validity = per-image codebook distance, MSE ratio, Mahalanobis and kNN on
the pooled ``mean`` features) give AUROC / FPR@95. The §7 prediction is tested on batch
codebooks: one batch of images per family, its codebook distance against its MSE ratio.
Imported by downstream_results.py.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch
from scipy import stats

from geolip.codebook import Codebook
from geolip.data import ImageDataset, noise_dataset
from geolip.data.noise import OOD_NOISES, TRAINING_NOISES
from geolip.downstream.ood_baselines import reconstruction_mse
from geolip.downstream.ood_eval import OOD_METHODS, evaluate_ood, fit_detectors

NEAR = ("log_normal", "beta", "weibull", "gumbel", "rayleigh", "shot", "quantize")
FAR = tuple(k for k in OOD_NOISES if k not in NEAR)
SIZE = 64
AMPLITUDES = (0.5, 2.0)
DISTANCE_THRESHOLD = 0.5
MSE_FACTOR = 5.0
MIN_CORRELATION = 0.5


def _concat(name: str, parts: list[ImageDataset]) -> ImageDataset:
    images = torch.cat([p.images for p in parts])
    labels = torch.cat([torch.full((len(p),), i) for i, p in enumerate(parts)])
    return ImageDataset.from_tensors(name, images, labels, tuple(p.classes[0] for p in parts))


def noise_group(kinds: tuple[str, ...], family: str, per_kind: int, seed: int) -> ImageDataset:
    parts = [noise_dataset(k, per_kind, SIZE, seed=seed, family=family) for k in kinds]  # type: ignore[arg-type]
    return _concat(f"{family}:{len(kinds)} kinds", parts)


def scaled(data: ImageDataset, factor: float) -> ImageDataset:
    """Every image multiplied by ``factor`` (in memory)."""
    x = data.images * factor
    return ImageDataset.from_tensors(f"{data.name} ×{factor:g}", x, data.labels, data.classes)


def run_ood(
    producer: torch.nn.Module,
    codebook: Codebook,
    id_family: tuple[str, ...],
    image_sets: dict[str, ImageDataset],
    *,
    n_id: int,
    per_kind: int,
    batch_images: int,
    cache_dir: str | None,
    seed: int,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Detection metrics per OOD group and the batch distance–MSE relation."""
    start = time.perf_counter()
    id_fit = noise_group(id_family, "training", max(1, n_id // len(id_family)), seed)
    id_test = noise_group(id_family, "training", max(1, n_id // len(id_family)), seed + 1)
    others = tuple(k for k in TRAINING_NOISES if k not in id_family)
    groups = {
        "near-OOD noise (7 pointwise types)": noise_group(NEAR, "ood", per_kind, seed + 2),
        "far-OOD noise (9 structured types)": noise_group(FAR, "ood", per_kind, seed + 2),
    }
    if others:
        groups[f"other training noises ({len(others)})"] = noise_group(
            others, "training", per_kind, seed + 2
        )
    for factor in AMPLITUDES:
        shifted = scaled(noise_group(id_family, "training", per_kind, seed + 5), factor)
        groups[f"in-distribution noise ×{factor:g}"] = shifted
    groups |= image_sets
    detectors = fit_detectors(producer, codebook, id_fit, cache_dir=cache_dir)
    log(f"OOD: detectors fitted on {len(id_fit)} ID images ({time.perf_counter() - start:.0f} s)")
    report = evaluate_ood(detectors, id_test, groups)
    log(f"OOD: per-image scores of {len(groups)} groups ({time.perf_counter() - start:.0f} s)")
    floor = detectors.mse.floor
    batches = _batch_points(
        detectors.engine, producer, floor, id_family, others, image_sets, batch_images, seed
    )
    log(f"OOD: {len(batches)} batch codebooks ({time.perf_counter() - start:.0f} s)")
    return {
        "id_family": list(id_family),
        "n_id_fit": len(id_fit),
        "n_id_test": len(id_test),
        "native_mse": floor,
        "groups": {k: len(v) for k, v in groups.items()},
        "metrics": {g: {m: r.as_dict() for m, r in per.items()} for g, per in report.items()},
        "methods": list(OOD_METHODS),
        "batches": batches,
        "prediction": _prediction(batches),
        "seconds": time.perf_counter() - start,
    }


def _batch_points(
    engine: Any,
    producer: torch.nn.Module,
    floor: float,
    id_family: tuple[str, ...],
    others: tuple[str, ...],
    image_sets: dict[str, ImageDataset],
    n: int,
    seed: int,
) -> list[dict[str, Any]]:
    """One batch of ``n`` images per family: its codebook distance, z and MSE ratio."""
    sets: list[tuple[str, str, ImageDataset]] = []
    repeats = max(1, 4 // len(id_family))  # at least 4 in-distribution batches
    for i, kind in enumerate(id_family * repeats):
        sets.append(("in-distribution", kind, noise_dataset(kind, n, SIZE, seed=seed + 10 + i)))
    sets += [("other training", k, noise_dataset(k, n, SIZE, seed=seed + 3)) for k in others]
    sets += [
        (
            "near-OOD noise" if k in NEAR else "far-OOD noise",
            k,
            noise_dataset(k, n, SIZE, seed=seed + 3, family="ood"),
        )
        for k in OOD_NOISES
    ]
    sets += [
        (
            "amplitude-shifted",
            f"{kind} ×{f:g}",
            scaled(noise_dataset(kind, n, SIZE, seed=seed + 6), f),
        )
        for kind in id_family[:4]
        for f in AMPLITUDES
    ]
    sets += [(name, name, data.first(min(n, len(data)))) for name, data in image_sets.items()]
    points = []
    for group, kind, data in sets:
        v = engine.validity_score(data)
        mse = reconstruction_mse(producer, data).mean().item()
        points.append(
            {
                "group": group,
                "kind": kind,
                "distance": v.distance,
                "z_score": v.z_score,
                "mse_ratio": mse / floor,
            }
        )
    return points


def _prediction(points: list[dict[str, Any]]) -> dict[str, Any]:
    """§7: distance > 0.5 ⇒ MSE > 5 × floor; corr(distance, MSE) ≥ 0.5."""
    d = torch.tensor([p["distance"] for p in points], dtype=torch.float64)
    r = torch.tensor([p["mse_ratio"] for p in points], dtype=torch.float64)
    far = d > DISTANCE_THRESHOLD
    holds = bool((r[far] > MSE_FACTOR).all()) if far.any() else None
    pearson = float(stats.pearsonr(d, r).statistic)
    pearson_log = float(stats.pearsonr(d, r.log()).statistic)
    spearman = float(stats.spearmanr(d, r).statistic)
    return {
        "n_batches": len(points),
        "n_above_threshold": int(far.sum()),
        "n_above_threshold_with_mse_over_5x": int((r[far] > MSE_FACTOR).sum()),
        "n_mse_over_5x": int((r > MSE_FACTOR).sum()),
        "implication_holds": holds,
        "pearson": pearson,
        "pearson_log_mse": pearson_log,
        "spearman": spearman,
        "correlation_ok": (not math.isnan(spearman)) and spearman >= MIN_CORRELATION,
    }
