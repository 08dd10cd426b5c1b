"""OOD baselines on the same frozen producer and features: reconstruction-MSE ratio,
Mahalanobis distance, k-nearest-neighbour distance. Every score: higher = more OOD.

Each detector is fitted on in-distribution data only and is an immutable value afterwards.
Feature detectors flatten (N, ...) features to (N, F) (e.g. ``mean`` (N, V, K) → (N, V·K)).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from sklearn.covariance import LedoitWolf

from geolip.data.dataset import ImageDataset
from geolip.producers.contract import Producer, require_reconstructor

Images = torch.Tensor | ImageDataset
"""(B, C, H, W) float images, or a dataset streamed in batches."""


def iter_batches(images: Images, batch_size: int) -> Iterator[torch.Tensor]:
    """Consecutive batches of at most ``batch_size`` images (N, C, H, W) → (b, C, H, W)."""
    if isinstance(images, ImageDataset):
        yield from images.batches(batch_size)
    else:
        for start in range(0, images.shape[0], batch_size):
            yield images[start : start + batch_size]


@torch.no_grad()
def reconstruction_mse(producer: Producer, images: Images, batch_size: int = 32) -> torch.Tensor:
    """Per-image mean squared reconstruction error (N,) float64 of the autoencoder."""
    decoder = require_reconstructor(producer, "the reconstruction-MSE baseline")
    out = []
    with producer.frozen():
        for x in iter_batches(images, batch_size):
            x = x.to(producer.device)
            recon = decoder.reconstruct(x).float()
            out.append((recon - x).square().mean(dim=(1, 2, 3)).double().cpu())
    return torch.cat(out)


@dataclass(frozen=True)
class MSERatio:
    """Score = per-image MSE / the native floor (the median MSE on in-distribution images)."""

    floor: float

    @classmethod
    def fit(cls, id_mse: torch.Tensor) -> MSERatio:
        return cls(floor=float(id_mse.double().median()))

    def score(self, mse: torch.Tensor) -> torch.Tensor:
        """(N,) MSE → (N,) ratio to the floor."""
        return mse.double() / self.floor


def _flat(features: torch.Tensor) -> torch.Tensor:
    return features.flatten(1).double()


@dataclass(frozen=True)
class Mahalanobis:
    """Squared Mahalanobis distance to the nearest class mean under one shared covariance
    (Lee et al. 2018), the covariance estimated with Ledoit–Wolf shrinkage so that F may
    exceed N. Without labels there is one class: the in-distribution mean.

    Attributes:
        means: (n_classes, F) class means; precision: (F, F) inverse shared covariance.
    """

    means: torch.Tensor
    precision: torch.Tensor

    @classmethod
    def fit(cls, features: torch.Tensor, labels: torch.Tensor | None = None) -> Mahalanobis:
        """Fit on in-distribution features (N, ...) and optional labels (N,)."""
        x = _flat(features)
        y = torch.zeros(x.shape[0], dtype=torch.long) if labels is None else labels.long()
        classes = y.unique()
        means = torch.stack([x[y == c].mean(dim=0) for c in classes])
        centred = x - means[torch.searchsorted(classes, y)]
        lw = LedoitWolf(assume_centered=True).fit(centred.numpy())
        return cls(means=means, precision=torch.from_numpy(lw.precision_))

    def score(self, features: torch.Tensor) -> torch.Tensor:
        """(N, ...) features → (N,) float64 min over classes of (x − μ)ᵀ Σ⁻¹ (x − μ)."""
        d = _flat(features).unsqueeze(1) - self.means.unsqueeze(0)  # (N, classes, F)
        return torch.einsum("ncf,fg,ncg->nc", d, self.precision, d).min(dim=1).values


@dataclass(frozen=True)
class KNN:
    """Distance to the k-th nearest in-distribution feature after L2 normalisation
    (Sun et al. 2022). Attributes: bank (N, F) unit rows; k."""

    bank: torch.Tensor
    k: int

    @classmethod
    def fit(cls, features: torch.Tensor, k: int = 5) -> KNN:
        bank = torch.nn.functional.normalize(_flat(features), dim=1)
        if not 1 <= k <= bank.shape[0]:
            raise ValueError(f"k must be in 1..{bank.shape[0]} (the fitted rows), got {k}")
        return cls(bank=bank, k=k)

    def score(self, features: torch.Tensor, exclude_self: bool = False) -> torch.Tensor:
        """(N, ...) features → (N,) float64 k-th nearest distance; ``exclude_self`` skips the
        nearest one (for scoring the fitted rows themselves)."""
        q = torch.nn.functional.normalize(_flat(features), dim=1)
        k = self.k + int(exclude_self)
        return torch.cdist(q, self.bank).topk(k, dim=1, largest=False).values[:, -1]
