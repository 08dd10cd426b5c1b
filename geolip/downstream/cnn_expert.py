"""A small CNN image expert, trained here on the train split's class labels.

    image → resample to size × size → [conv 3×3 → GELU → max-pool 2] × 2 → conv 3×3 → GELU
          → global mean → features (width·4) → linear → class logits

It is trained with Adam on cross-entropy for a few epochs, only on the indices it is given
as the train split, seeded (initialisation and batch order; the global RNG is untouched).
Its features are the global-mean layer, so they depend on the split and the seed
(``seeded`` is true): a caller refits it for every split.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.functional import interpolate

from geolip.data.dataset import ImageDataset
from geolip.downstream.classify import accuracy, fit_cross_entropy
from geolip.errors import DatasetError


class SmallCNN(nn.Module):
    """Three 3 × 3 conv layers (width, 2·width, 4·width), two max-pools, global mean."""

    def __init__(self, channels: int, n_classes: int, width: int = 16) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1),
            nn.GELU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.GELU(),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 4 * width, 3, padding=1),
            nn.GELU(),
        )
        self.head = nn.Linear(4 * width, n_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) → (B, 4·width) features."""
        return self.body(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


@dataclass
class CNNImage:
    """The trained-here expert (module docstring)."""

    size: int = 32
    width: int = 16
    epochs: int = 10
    lr: float = 3e-3
    batch_size: int = 64
    name: str = "cnn"
    modality: str = "image"
    seeded: bool = True
    last_train_accuracy: float | None = None

    def _images(self, dataset: ImageDataset) -> torch.Tensor:
        x = dataset.images
        if x.shape[-2:] != (self.size, self.size):
            x = interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True)
        return x

    def fit(self, dataset: ImageDataset, train: torch.Tensor, seed: int) -> SmallCNN:
        """Train on the images at ``train`` (their labels); returns the model in eval mode."""
        if train.numel() == 0:
            raise DatasetError("the CNN expert needs a non-empty train split")
        x = self._images(dataset.subset(train))
        y = dataset.labels[train]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = SmallCNN(x.shape[1], len(dataset.classes), self.width)
        optimizer = torch.optim.Adam(model.parameters(), lr=self.lr)
        fit_cross_entropy(
            model, x, y, optimizer, epochs=self.epochs, batch_size=self.batch_size, seed=seed
        )
        self.last_train_accuracy = accuracy(model, x, y)
        return model

    def features(self, dataset: ImageDataset, train: torch.Tensor, seed: int) -> torch.Tensor:
        model = self.fit(dataset, train, seed)
        with torch.no_grad():
            return model.embed(self._images(dataset)).float()

    def describe(self) -> dict[str, Any]:
        return {
            "expert": self.name,
            "size": self.size,
            "width": self.width,
            "epochs": self.epochs,
            "lr": self.lr,
            "trained_on": "train split labels",
            "last_train_accuracy": self.last_train_accuracy,
        }
