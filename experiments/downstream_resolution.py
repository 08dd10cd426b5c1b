"""Resolution transfer (OMEGA §1): train at 64 × 64, test at 64 … 512 without any change.

Methods, all trained once on 64 × 64 images and never touched again:
  codebook mean / linear, mean / mlp, hist / mlp  heads on frozen features (geolip.downstream)
  codebook mean / mlp (resized)  the same mean / mlp head, test images resized to 64 × 64 and
                                 standardised again first (as for every "resized" method)
  pixel linear probe  on the 64 × 64 pixels; test images are resized to 64 × 64 first
  small CNN (native)  end to end, ~56 K parameters, global average pool, fed each resolution
  small CNN (resized) the same network fed test images resized to 64 × 64
Every image is standardised per image (zero mean, unit std), the scale the producer was
trained on. Imported by downstream_results.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn.functional import cross_entropy

from geolip.codebook import Codebook
from geolip.data import ImageDataset
from geolip.downstream.classify import accuracy, fit_head, train_head
from geolip.downstream.features import compute_features

TRAIN_SIZE = 64
HEADS = (("mean", "linear"), ("mean", "mlp"), ("hist", "mlp"))
RESIZED_HEAD = "codebook mean/mlp (resized)"


class SmallCNN(nn.Module):
    """Three stride-2 3×3 convolutions (32, 64, 64 channels), GELU, global average pool, linear:
    56,646 parameters for 6 classes; takes any input size."""

    def __init__(self, n_classes: int, width: int = 32) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(3, w, 3, stride=2, padding=1),
            nn.GELU(),
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1),
            nn.GELU(),
            nn.Conv2d(2 * w, 2 * w, 3, stride=2, padding=1),
            nn.GELU(),
        )
        self.out = nn.Linear(2 * w, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(x).mean(dim=(2, 3)))


def train_cnn(train: ImageDataset, epochs: int, seed: int) -> SmallCNN:
    """Adam 2e-3, batch 64, cross-entropy; init and order from ``seed``."""
    x, y = train.images, train.labels
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        cnn = SmallCNN(len(train.classes))
    opt = torch.optim.Adam(cnn.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=gen)
        for start in range(0, len(y), 64):
            rows = order[start : start + 64]
            loss = cross_entropy(cnn(x[rows]), y[rows])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return cnn.eval()


@torch.no_grad()
def streamed_accuracy(model: nn.Module, data: ImageDataset, batch_size: int) -> float:
    correct = 0
    for start, x in zip(range(0, len(data), batch_size), data.batches(batch_size), strict=True):
        y = data.labels[start : start + x.shape[0]]
        correct += int((model(x).argmax(dim=1) == y).sum())
    return correct / len(data)


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def run_transfer(
    name: str,
    make: Callable[[str, int], ImageDataset],
    producer: torch.nn.Module,
    codebook: Codebook,
    sizes: tuple[int, ...],
    *,
    cache_dir: str | None,
    cnn_epochs: int,
    n_test: int,
    seed: int,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Accuracy of every method at every test size. ``make(split, size)`` gives a dataset:
    the same images at every size for the test split."""
    start = time.perf_counter()
    train = make("train", TRAIN_SIZE)
    feats = compute_features(producer, codebook, train, ("mean", "hist"), cache_dir=cache_dir)
    heads = {
        f"codebook {feature}/{kind}": train_head(
            feats, feature, classes=train.classes, kind=kind, epochs=100, seed=seed
        )
        for feature, kind in HEADS
    }
    pixels = fit_head(
        train.images, train.labels, len(train.classes), kind="linear", epochs=100, seed=seed
    )
    cnn = train_cnn(train, cnn_epochs, seed)
    log(f"{name}: trained heads, pixel probe and CNN in {time.perf_counter() - start:.0f} s")
    params = {k: h.head.param_count() for k, h in heads.items()}
    params[RESIZED_HEAD] = params[RESIZED_HEAD.removesuffix(" (resized)")]
    params |= {"pixel linear (resized)": _params(pixels)}
    params |= {"CNN (native)": _params(cnn), "CNN (resized)": _params(cnn)}
    results: dict[str, dict[int, float]] = {k: {} for k in params}
    for size in sizes:
        t = time.perf_counter()
        lazy = make("test", size)  # rendered once here, read three times below
        test = ImageDataset.from_tensors(lazy.name, lazy.images, lazy.labels, lazy.classes)
        batch = max(1, 4096 // size)  # bounded memory at 512²: (B, P, V, K) activations
        f = compute_features(
            producer, codebook, test, ("mean", "hist"), batch_size=batch, cache_dir=cache_dir
        )
        for key, head in heads.items():
            results[key][size] = head.accuracy(f)
        small = test.resized(TRAIN_SIZE).standardized()  # shrinking lowers the std: restore it
        f_small = compute_features(producer, codebook, small, ("mean",), cache_dir=cache_dir)
        results[RESIZED_HEAD][size] = heads[RESIZED_HEAD.removesuffix(" (resized)")].accuracy(
            f_small
        )
        results["pixel linear (resized)"][size] = accuracy(pixels, small.images, small.labels)
        results["CNN (native)"][size] = streamed_accuracy(cnn, test, batch)
        results["CNN (resized)"][size] = streamed_accuracy(cnn, small, 256)
        row = ", ".join(f"{k} {v[size]:.3f}" for k, v in results.items())
        log(f"{name} @ {size}: {row} ({time.perf_counter() - t:.0f} s)")
    return {
        "dataset": name,
        "n_train": len(train),
        "n_test": n_test,
        "classes": list(train.classes),
        "parameters": params,
        "accuracy": results,
        "seconds": time.perf_counter() - start,
    }
