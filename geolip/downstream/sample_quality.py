"""Sample quality without FID: a classifier's verdict on class-conditional samples, and
per-class pixel statistics of the samples against real images of the same class.

Classifier (:func:`classifier_report`): the top-1 accuracy on samples drawn for known classes,
the accuracy per class, how often each class is predicted, and the label-permutation null
(the same predictions scored against shuffled labels: what predictions unrelated to the
class asked for reach; 1/K on average for K balanced classes).

Pixels (:func:`class_pixel_statistics`): for class c, S_c the samples drawn for c and R_c the
reference images of c, each statistic over every pixel and channel:

    mean_image_mse     mean over pixels of (mean(S_c) − mean(R_c))², the mean images' distance
    nearest_class      the class c' whose reference mean image is nearest to mean(S_c)
    between_class_mse  mean over c' ≠ c of the MSE of mean(R_c) against mean(R_c'): the scale
                       at which a wrong-class mean image sits
    intensity          mean pixel value                      (samples, reference)
    contrast           mean over images of each image's std  (samples, reference)
    diversity          mean over pixels of the std across the class's images (samples,
                       reference): 0 when every image of the class is the same
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


@torch.no_grad()
def predict(classifier: nn.Module, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Top-1 class ids (N,) of ``classifier`` on images (N, ...), in batches, on x's device."""
    parts = [
        classifier(x[start : start + batch_size].float()).argmax(dim=1)
        for start in range(0, x.shape[0], batch_size)
    ]
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long, device=x.device)


def classifier_report(
    predictions: torch.Tensor,
    labels: torch.Tensor,
    n_classes: int,
    *,
    null_trials: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Accuracy of ``predictions`` (N,) against ``labels`` (N,), both class ids in
    [0, n_classes), with its label-permutation null.

    Returns:
        ``accuracy``; ``per_class`` accuracy (NaN for a class without labels);
        ``predicted_share``, the share of predictions of each class; ``null_mean``, ``null_sd``
        and ``null_p95``, the accuracy of the same predictions against ``null_trials`` seeded
        permutations of the labels; ``null_percentile``, the share of those below the accuracy.
    """
    if predictions.shape != labels.shape or predictions.ndim != 1:
        raise ValueError(
            f"expected predictions and labels of one shape (N,), got {tuple(predictions.shape)} "
            f"and {tuple(labels.shape)}"
        )
    p, y = predictions.cpu().long(), labels.cpu().long()
    hit = (p == y).double()
    counts = torch.bincount(y, minlength=n_classes).double()
    per_class = torch.bincount(y, weights=hit, minlength=n_classes) / counts
    gen = torch.Generator().manual_seed(seed)
    null = torch.stack(
        [
            (p == y[torch.randperm(y.numel(), generator=gen)]).double().mean()
            for _ in range(null_trials)
        ]
    )
    accuracy = hit.mean().item()
    return {
        "accuracy": accuracy,
        "per_class": per_class.tolist(),
        "predicted_share": (torch.bincount(p, minlength=n_classes).double() / p.numel()).tolist(),
        "null_mean": null.mean().item(),
        "null_sd": null.std().item(),
        "null_p95": null.quantile(0.95).item(),
        "null_percentile": (null < accuracy).double().mean().item(),
    }


def class_pixel_statistics(
    samples: torch.Tensor,
    labels: torch.Tensor,
    reference: torch.Tensor,
    reference_labels: torch.Tensor,
    n_classes: int,
) -> list[dict[str, float | int]]:
    """Per-class pixel statistics (module docstring) of samples (N, C, H, W) drawn for
    ``labels`` (N,) against reference images (M, C, H, W) of ``reference_labels`` (M,).

    Every class in [0, n_classes) needs at least two samples and two reference images.
    Returns one dict per class, in class order.
    """
    if samples.shape[1:] != reference.shape[1:]:
        raise ValueError(
            f"samples {tuple(samples.shape[1:])} and reference {tuple(reference.shape[1:])} "
            "images differ in shape"
        )
    groups = {"samples": (samples, labels), "reference": (reference, reference_labels)}
    split: dict[str, list[torch.Tensor]] = {}
    for name, (x, y) in groups.items():
        x, y = x.detach().cpu().double(), y.cpu()
        split[name] = [x[y == c] for c in range(n_classes)]
        short = [c for c, xc in enumerate(split[name]) if xc.shape[0] < 2]
        if short:
            raise ValueError(f"{name}: classes {short} have fewer than two images")
    means = {name: torch.stack([xc.mean(dim=0) for xc in parts]) for name, parts in split.items()}
    # (K samples' mean images, K reference mean images) squared distances, per pixel
    distance = (means["samples"][:, None] - means["reference"][None]).pow(2).flatten(2).mean(-1)
    between = (means["reference"][:, None] - means["reference"][None]).pow(2).flatten(2).mean(-1)
    out: list[dict[str, float | int]] = []
    for c in range(n_classes):
        row: dict[str, float | int] = {
            "class": c,
            "mean_image_mse": distance[c, c].item(),
            "nearest_class": int(distance[c].argmin()),
            "between_class_mse": (between[c].sum() / max(n_classes - 1, 1)).item(),
        }
        for name, parts in split.items():
            xc = parts[c]
            row[f"{name}_intensity"] = xc.mean().item()
            row[f"{name}_contrast"] = xc.flatten(1).std(dim=1, unbiased=False).mean().item()
            row[f"{name}_diversity"] = xc.std(dim=0, unbiased=False).mean().item()
        out.append(row)
    return out


def summarise_classes(rows: list[dict[str, float | int]]) -> dict[str, float]:
    """Means over classes of every statistic of :func:`class_pixel_statistics`, and
    ``nearest_is_own``: the share of classes whose sample mean is nearest their own."""
    keys = [k for k in rows[0] if k not in ("class", "nearest_class")]
    summary = {k: sum(float(r[k]) for r in rows) / len(rows) for k in keys}
    summary["nearest_is_own"] = sum(r["nearest_class"] == r["class"] for r in rows) / len(rows)
    return summary
