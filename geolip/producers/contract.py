"""The producer contract: what every model that emits codebook rows promises downstream.

Extraction, features, OOD scores, the tokenizer and editing read a producer only through
:class:`Producer`; nothing downstream guesses attributes. A model family implements it
explicitly, usually by subclassing :class:`ProducerModule` (which supplies identity, device and
:meth:`~ProducerModule.frozen`) and declaring its :class:`Geometry` and ``encode_rows``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

import torch
from pydantic import BaseModel

from geolip.codebook import ProducerInfo
from geolip.errors import CheckpointError
from geolip.producers.pretrained import (
    CONFIG_FILE,
    PretrainedModule,
    load_weights,
    parse_config,
    read_pretrained,
)

TokenKind = Literal["image_patches", "tokens"]
P = TypeVar("P", bound="ProducerModule")


@dataclass(frozen=True)
class Geometry:
    """The shape of a producer's rows.

    Attributes:
        D: ambient dimension; every row lies on S^(D−1).
        rows_per_token: V, rows emitted for each token (patch).
        channels: image channels the producer takes (``tokens`` producers: 1, see below).
        patch_size: patch side in pixels for ``image_patches`` producers, else ``None``.
        token_kind: ``"image_patches"`` (images (B, C, H, W) → raster patches) or ``"tokens"``
            (sequences (B, T, F) → one token each; they also travel as one-channel "images"
            (B, 1, T, F), which is how datasets, calibration and extraction carry them).
        token_dim: F, the width of a token of a ``tokens`` producer, else ``None``.
    """

    D: int
    rows_per_token: int
    channels: int
    patch_size: int | None
    token_kind: TokenKind = "image_patches"
    token_dim: int | None = None

    def __post_init__(self) -> None:
        if self.D < 2 or self.rows_per_token < 1:
            raise ValueError(f"need D ≥ 2 and rows_per_token ≥ 1, got {self}")
        if (self.token_kind == "image_patches") != (self.patch_size is not None):
            raise ValueError("patch_size is set exactly for image_patches producers")
        if (self.token_kind == "tokens") != (self.token_dim is not None):
            raise ValueError("token_dim is set exactly for tokens producers")


@runtime_checkable
class Producer(Protocol):
    """A model whose ``encode_rows`` maps inputs to unit rows M (B, P, V, D)."""

    @property
    def geometry(self) -> Geometry: ...

    @property
    def device(self) -> torch.device: ...

    @property
    def producer_id(self) -> str: ...

    def producer_info(self) -> ProducerInfo: ...

    def encode_rows(self, x: torch.Tensor) -> torch.Tensor: ...

    def untrained_twin(self, seed: int) -> Producer: ...

    def frozen(self) -> AbstractContextManager[Any]: ...


@runtime_checkable
class Reconstructor(Protocol):
    """A producer with a decode path: inputs → rows → inputs again (an autoencoder).

    ``reconstruct(x)``: (B, C, H, W) → (B, C, H, W). ``decode_rows(m, grid)``: rows
    (B, P, V, D) of a gh × gw patch grid (raster order, P = gh·gw, as ``encode_rows`` emits
    them) → images (B, C, gh·ps, gw·ps); the tokenizer decodes rows rebuilt from axes with it.
    """

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor: ...

    def decode_rows(self, m: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor: ...


def require_reconstructor(producer: object, purpose: str) -> Reconstructor:
    """``producer`` as a :class:`Reconstructor`, or a TypeError naming ``purpose``."""
    if not isinstance(producer, Reconstructor):
        raise TypeError(
            f"{purpose} needs a producer with a decode path; {type(producer).__name__} has none"
        )
    return producer


@runtime_checkable
class Trainable(Protocol):
    """What :class:`geolip.producers.train.Trainer` needs of a model: ``forward(x)`` → a dict
    with ``recon`` (x's shape), ``S`` and ``S_orig`` (…, D) spectra and ``M`` (…, V, D) rows
    (a plain control without them is validated on its MSE alone), optionally ``aux_loss``, a
    differentiable scalar added to MSE(recon, x) in training; the cross-attention α vectors it
    logs; the ``config.json`` document its checkpoints carry."""

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]: ...

    def attention_alphas(self) -> list[torch.Tensor]: ...

    def pretrained_config(self) -> dict[str, Any]: ...


@runtime_checkable
class GroupedParameters(Protocol):
    """A model whose parts train at different rates: ``parameter_groups(lr)`` → Adam parameter
    groups (``params``, ``lr``, and any label), covering every trainable parameter once; the
    Trainer's schedule scales each group's lr from there."""

    def parameter_groups(self, lr: float) -> list[dict[str, Any]]: ...


@runtime_checkable
class Monitored(Protocol):
    """A model with statistics of its own, logged each epoch: ``monitors(x)`` → JSON-safe
    metrics on the validation inputs x (B, C, H, W), computed without gradient."""

    def monitors(self, x: torch.Tensor) -> dict[str, Any]: ...


@runtime_checkable
class Phased(Protocol):
    """A model whose loss changes with the training phase: ``start_epoch(epoch)`` is called by
    the Trainer before each epoch's first step (also after a resume), epochs counted from 0."""

    def start_epoch(self, epoch: int) -> None: ...


@runtime_checkable
class TargetRegressor(Protocol):
    """A model the Trainer fits to targets it draws itself from labelled images (a flow or
    denoising objective), instead of reconstructing noise.

    ``training_pair(x, labels, generator)`` → (inputs, target): every random draw taken from
    ``generator`` (so resume is exact); the Trainer minimises MSE(model(*inputs), target), the
    forward going through DistributedDataParallel when it wraps the model.
    ``check_batch(x, labels)`` raises ValueError naming what is wrong (channels, size, class
    id) before any work. ``validation_metrics(x, labels, generator)`` → JSON-safe metrics
    with ``mse``, which picks ``best/``."""

    def training_pair(
        self, x: torch.Tensor, labels: torch.Tensor, generator: torch.Generator
    ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]: ...

    def check_batch(self, x: torch.Tensor, labels: torch.Tensor) -> None: ...

    def validation_metrics(
        self, x: torch.Tensor, labels: torch.Tensor, generator: torch.Generator
    ) -> dict[str, Any]: ...

    def pretrained_config(self) -> dict[str, Any]: ...


class ProducerModule(PretrainedModule):
    """Base of the producer families: an ``nn.Module`` with a pydantic ``config`` and an
    optional ``preset`` name. Subclasses that emit rows add ``geometry`` and ``encode_rows``
    and so satisfy :class:`Producer`; this base supplies the rest.
    """

    config: Any
    preset: str | None = None
    config_class: type[BaseModel] | None = None
    """A family that sets this (and takes ``(config, preset=...)``) inherits the folder format
    ``{"model_class", "model": config, "preset"}``: :meth:`pretrained_config` and
    :meth:`from_folder` below."""

    def pretrained_config(self) -> dict[str, Any]:
        """``config.json`` of a saved folder or checkpoint: class, config, preset."""
        return {
            "model_class": type(self).__name__,
            "model": self.config.model_dump(mode="json"),
            "preset": self.preset,
        }

    @classmethod
    def from_folder(cls: type[P], folder: str | Path) -> P:
        """A ``save_pretrained`` folder or a training checkpoint of this class, in eval mode;
        a foreign or damaged folder is refused with a CheckpointError naming the file."""
        if cls.config_class is None:
            raise TypeError(f"{cls.__name__} sets no config_class: it reads folders its own way")
        doc, state = read_pretrained(folder, cls.__name__)
        if not isinstance(doc.get("model"), dict):
            raise CheckpointError("no 'model' config object", Path(folder) / CONFIG_FILE)
        config = parse_config(cls.config_class, doc["model"], folder)
        model = cls(config, preset=doc.get("preset"))  # type: ignore[call-arg]
        return load_weights(model, state, folder)

    @property
    def device(self) -> torch.device:
        """Device of the first parameter (CPU for a parameter-free producer)."""
        first = next(self.parameters(), None)
        return first.device if first is not None else torch.device("cpu")

    def producer_info(self) -> ProducerInfo:
        """Kind, preset name, sha256 of the canonical config and of the weights (sorted
        state dict, float32 bytes): the same weights give the same hashes on any device."""
        config = self.config.model_dump(mode="json")
        text = json.dumps(config, sort_keys=True, separators=(",", ":"))
        h = hashlib.sha256()
        for key, value in sorted(self.state_dict().items()):
            h.update(key.encode())
            h.update(value.detach().cpu().contiguous().float().numpy().tobytes())
        kind = "".join(f"_{ch.lower()}" if ch.isupper() else ch for ch in type(self).__name__)
        return ProducerInfo(
            kind=kind.lstrip("_"),
            name=self.preset,
            config_sha256=hashlib.sha256(text.encode()).hexdigest(),
            weights_sha256=h.hexdigest(),
        )

    @property
    def producer_id(self) -> str:
        """sha256 of (kind, config hash, weights hash): changes with the class, config or any
        weight, not with the preset name. Feature caches and heads are keyed by it."""
        info = self.producer_info()
        parts = [info.kind, info.config_sha256, info.weights_sha256]
        return hashlib.sha256(json.dumps(parts, separators=(",", ":")).encode()).hexdigest()

    def untrained_twin(self: P, seed: int) -> P:
        """The same class and config freshly initialised under ``seed``, on the same device, in
        eval mode; the global RNG is left untouched."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            twin = type(self)(self.config)
        twin.preset = self.preset
        return twin.to(self.device).eval()

    @contextmanager
    def frozen(self: P) -> Iterator[P]:
        """Inference: eval mode and no autograd inside; the previous mode is restored after,
        also when the body raises."""
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                yield self
        finally:
            self.train(was_training)
