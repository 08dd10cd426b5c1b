""":class:`ImageDataset`: N labelled images (N, C, H, W) float32, made batch by batch.

A dataset is a recipe, not necessarily a tensor: ``batch(indices)`` makes exactly the images
asked for, so a 512 × 512 procedural set or an upsampled one never has to sit in memory at
once. Every dataset carries a ``fingerprint``, a sha256 that changes whenever any image could
change (source bytes or scene description, selection, order, every transform); feature caches
are keyed by it. Transforms (:meth:`resized`, :meth:`with_channels`, :meth:`standardized`,
:meth:`subset`) return new datasets and never touch the source.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

import torch
from torch.nn.functional import interpolate

from geolip.errors import DatasetError

Render = Callable[[torch.Tensor], torch.Tensor]
"""(n,) int64 indices → (n, C, H, W) float32 images."""

STANDARDIZE_EPS = 1e-6


def fingerprint_of(*parts: object) -> str:
    """sha256 over the ``repr`` of each part, NUL-separated (tensors: dtype, shape and bytes)."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, torch.Tensor):
            t = part.detach().cpu().contiguous()
            h.update(f"{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.numpy().tobytes())
        else:
            h.update(repr(part).encode())
        h.update(b"\0")
    return h.hexdigest()


@dataclass(frozen=True)
class ImageDataset:
    """N labelled images of one size and channel count, made on demand.

    Attributes:
        name: what the images are (``"digits"``, ``"shapes"``, ...), for people.
        labels: (N,) int64 class ids into ``classes``.
        classes: class names.
        size: (H, W) of every image.
        channels: C of every image.
        fingerprint: sha256 identifying the exact images (see module docstring).
        render: indices → images; use :meth:`batch`.
        captions: one caption per image, or ``None``.
    """

    name: str
    labels: torch.Tensor
    classes: tuple[str, ...]
    size: tuple[int, int]
    channels: int
    fingerprint: str
    render: Render
    captions: tuple[str, ...] | None = None

    @classmethod
    def from_tensors(
        cls,
        name: str,
        images: torch.Tensor,
        labels: torch.Tensor,
        classes: Sequence[str],
        captions: Sequence[str] | None = None,
    ) -> ImageDataset:
        """Wrap in-memory images (N, C, H, W) (cast to float32) and labels (N,).

        Raises:
            DatasetError: shapes that disagree, non-finite values, labels outside ``classes``.
        """
        x = torch.as_tensor(images).float().contiguous()
        y = torch.as_tensor(labels).long().flatten()
        if x.ndim != 4:
            raise DatasetError(f"{name}: images must be (N, C, H, W), got {tuple(x.shape)}")
        if y.shape[0] != x.shape[0]:
            raise DatasetError(f"{name}: {x.shape[0]} images but {y.shape[0]} labels")
        if captions is not None and len(captions) != x.shape[0]:
            raise DatasetError(f"{name}: {x.shape[0]} images but {len(captions)} captions")
        if y.numel() and (y.min() < 0 or y.max() >= len(classes)):
            raise DatasetError(f"{name}: labels outside 0..{len(classes) - 1}")
        if not torch.isfinite(x).all():
            raise DatasetError(f"{name}: images contain NaN or ±inf")
        return cls(
            name=name,
            labels=y,
            classes=tuple(classes),
            size=(x.shape[2], x.shape[3]),
            channels=x.shape[1],
            fingerprint=fingerprint_of("tensors", x, y, tuple(classes)),
            render=lambda idx: x[idx],
            captions=None if captions is None else tuple(captions),
        )

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def batch(self, indices: torch.Tensor | Sequence[int]) -> torch.Tensor:
        """Images (n, C, H, W) float32 for the given indices, in that order."""
        idx = torch.as_tensor(indices, dtype=torch.long).flatten()
        return self.render(idx)

    def batches(self, batch_size: int) -> Iterator[torch.Tensor]:
        """All images in order, ``batch_size`` at a time (the last batch may be smaller)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        for start in range(0, len(self), batch_size):
            yield self.batch(torch.arange(start, min(start + batch_size, len(self))))

    @property
    def images(self) -> torch.Tensor:
        """Every image at once, (N, C, H, W) float32: mind the memory at large sizes."""
        return self.batch(torch.arange(len(self)))

    # transforms ---------------------------------------------------------------------------
    def subset(self, indices: torch.Tensor | Sequence[int]) -> ImageDataset:
        """The images at ``indices`` (any order, repeats allowed)."""
        idx = torch.as_tensor(indices, dtype=torch.long).flatten()
        if idx.numel() and (idx.min() < 0 or idx.max() >= len(self)):
            raise DatasetError(f"{self.name}: subset index out of range for {len(self)} images")
        parent = self.render
        return replace(
            self,
            labels=self.labels[idx],
            fingerprint=fingerprint_of(self.fingerprint, "subset", idx),
            render=lambda i: parent(idx[i]),
            captions=None
            if self.captions is None
            else tuple(self.captions[j] for j in idx.tolist()),
        )

    def shuffled(self, seed: int) -> ImageDataset:
        """A seeded permutation of the images."""
        order = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))
        return self.subset(order)

    def first(self, n: int | None) -> ImageDataset:
        """The first ``n`` images (all of them for ``None``); 1 ≤ n ≤ N."""
        if n is None:
            return self
        if not 1 <= n <= len(self):
            raise DatasetError(f"{self.name}: n must be in 1..{len(self)}, got {n}")
        return self.subset(torch.arange(n))

    def split(self, n_first: int) -> tuple[ImageDataset, ImageDataset]:
        """The first ``n_first`` images and the rest (shuffle first for a random split)."""
        if not 0 <= n_first <= len(self):
            raise DatasetError(f"{self.name}: cannot split {len(self)} images at {n_first}")
        return self.subset(torch.arange(n_first)), self.subset(torch.arange(n_first, len(self)))

    def resized(self, size: int | tuple[int, int]) -> ImageDataset:
        """Every image resampled to ``size`` (bilinear, anti-aliased when shrinking)."""
        h, w = (size, size) if isinstance(size, int) else size
        if h < 1 or w < 1:
            raise DatasetError(f"{self.name}: cannot resize to {h}×{w}")
        if (h, w) == self.size:
            return self
        parent = self.render

        def render(idx: torch.Tensor) -> torch.Tensor:
            x = parent(idx)
            if x.shape[0] == 0:
                return x.new_zeros(0, x.shape[1], h, w)
            return interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)

        return replace(
            self,
            size=(h, w),
            fingerprint=fingerprint_of(self.fingerprint, "resized", h, w),
            render=render,
        )

    def with_channels(self, channels: int) -> ImageDataset:
        """Grey images repeated to ``channels``, or colour images averaged to one channel."""
        if channels == self.channels:
            return self
        if self.channels != 1 and channels != 1:
            raise DatasetError(
                f"{self.name}: cannot turn {self.channels} channels into {channels} "
                "(only 1 → C and C → 1 are defined)"
            )
        parent = self.render

        def render(idx: torch.Tensor) -> torch.Tensor:
            x = parent(idx)
            if channels == 1:
                return x.mean(dim=1, keepdim=True)
            return x.expand(-1, channels, -1, -1).contiguous()

        return replace(
            self,
            channels=channels,
            fingerprint=fingerprint_of(self.fingerprint, "channels", channels),
            render=render,
        )

    def standardized(self) -> ImageDataset:
        """Each image shifted and scaled to zero mean and unit std over all its pixels and
        channels (a constant image becomes zeros). Sphere-solvers trained on unit-variance
        noise expect inputs on that scale."""
        parent = self.render

        def render(idx: torch.Tensor) -> torch.Tensor:
            x = parent(idx)
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            std = x.std(dim=(1, 2, 3), keepdim=True, unbiased=False)
            return (x - mean) / (std + STANDARDIZE_EPS)

        return replace(
            self, fingerprint=fingerprint_of(self.fingerprint, "standardized"), render=render
        )
