"""Frozen producer + codebook → activations → pooled features, streamed and cached on disk.

    images (B, C, H, W) → producer.encode_rows → M (B, P, V, D), unit rows
      → codebook.activations → A = |M̂ · axesᵀ| (B, P, V, K) ∈ [0, 1]
      → "mean": patch mean of A                  (B, V, K)     any resolution, same shape
        "hist": histogram of the quantised axes  (B, K)        argmax_k A per row, over P·V rows
        "map":  row mean of A on the patch grid  (B, K, gh, gw) keeps the layout; size-dependent

"mean" and "hist" are averages over patches, so their shape does not depend on the image
size: a head trained at 64 × 64 reads 512 × 512 features unchanged. All three are invariant to
the sign of every row and every axis (A takes |cos|). Features are cached as one safetensors
file per (producer id, codebook id, dataset fingerprint, kinds, format version); a second run
with the same key reads the file and never runs the producer.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from safetensors.torch import save

from geolip._files import atomic_write
from geolip._files import cache_dir as _cache_dir
from geolip._progress import progress_bar
from geolip._safetensors import load_tensors
from geolip.codebook import Codebook
from geolip.data.dataset import ImageDataset
from geolip.errors import CheckpointError, DatasetError, IncompatibleInputError
from geolip.producers.contract import Producer

FeatureKind = Literal["mean", "hist", "map"]
FEATURE_KINDS: tuple[FeatureKind, ...] = ("mean", "hist", "map")
FEATURES_FORMAT = "geolip.features"
FEATURES_VERSION = 1
"""Bumped whenever the features computed for the same key could change."""


def default_cache_dir() -> Path:
    """Where features are cached: :func:`geolip._files.cache_dir` for ``"features"``."""
    return _cache_dir("features")


def check_inputs(
    producer: Producer,
    codebook: Codebook,
    *,
    n_images: int,
    channels: int,
    size: tuple[int, int],
) -> None:
    """Refuse, before any work, inputs that the producer or codebook cannot take.

    Raises:
        DatasetError: no images.
        IncompatibleInputError: channel count or image size the producer cannot take, or a
            codebook whose D differs from the producer's.
    """
    if n_images == 0:
        raise DatasetError("the dataset is empty: no images to encode")
    geometry = producer.geometry
    d, c, ps = geometry.D, geometry.channels, geometry.patch_size
    if d != codebook.dim:
        raise IncompatibleInputError(
            f"codebook {codebook.name!r} has D={codebook.dim}, the producer emits rows of D={d}"
        )
    if c != channels:
        raise IncompatibleInputError(
            f"images have {channels} channel(s), the producer takes {c} "
            "(ImageDataset.with_channels converts grey ↔ colour)"
        )
    if ps is not None and min(size) < ps:
        raise IncompatibleInputError(
            f"images are {size[0]}×{size[1]}, smaller than one {ps}×{ps} patch of the producer"
        )


def patch_grid(size: tuple[int, int], patch_size: int) -> tuple[int, int]:
    """(gh, gw) of the padded patch grid: ⌈H/ps⌉ × ⌈W/ps⌉ (raster order, as encode_rows)."""
    return math.ceil(size[0] / patch_size), math.ceil(size[1] / patch_size)


def pool_activations(
    activations: torch.Tensor,
    kinds: Sequence[FeatureKind] = ("mean", "hist"),
    grid: tuple[int, int] | None = None,
) -> dict[str, torch.Tensor]:
    """Pool activations A (B, P, V, K) into the requested features (module docstring).

    Args:
        activations: |cos| of each row to each axis, (B, P, V, K).
        kinds: any of ``mean`` (B, V, K), ``hist`` (B, K) (rows per axis / (P·V), sums to 1;
            ties go to the lowest axis index), ``map`` (B, K, gh, gw).
        grid: (gh, gw) with gh·gw = P, needed for ``map``.
    """
    b, p, _, k = activations.shape
    out: dict[str, torch.Tensor] = {}
    for kind in kinds:
        if kind == "mean":
            out[kind] = activations.mean(dim=1)
        elif kind == "hist":
            codes = activations.argmax(dim=-1).reshape(b, -1)  # (B, P·V)
            counts = torch.zeros(b, k, dtype=activations.dtype, device=activations.device)
            counts.scatter_add_(1, codes, torch.ones_like(codes, dtype=activations.dtype))
            out[kind] = counts / codes.shape[1]
        elif kind == "map":
            if grid is None or grid[0] * grid[1] != p:
                raise IncompatibleInputError(f"map features need a patch grid with {p} patches")
            out[kind] = activations.mean(dim=2).transpose(1, 2).reshape(b, k, *grid)
        else:
            raise ValueError(f"unknown feature kind {kind!r}; expected one of {FEATURE_KINDS}")
    return out


@torch.no_grad()
def encode_activations(
    producer: Producer, codebook: Codebook, images: torch.Tensor
) -> torch.Tensor:
    """Images (B, C, H, W) → activations (B, P, V, K) = |cos(rows, axes)|, on the producer's
    device, float32."""
    rows = producer.encode_rows(images.to(producer.device))
    return codebook.activations(rows.float())


@dataclass(frozen=True)
class Features:
    """Pooled features of one dataset under one producer and codebook.

    Attributes:
        tensors: kind → float32 CPU tensor with N rows (shapes in the module docstring).
        labels: (N,) int64, the dataset's labels.
        key: the cache key (sha256 hex).
        producer_id, codebook_id, dataset_fingerprint: what the key was made of.
        size: (H, W) of the images; grid: the patch grid (gh, gw), when known.
        path: the cache file, if cached; from_cache: read from it rather than computed.
    """

    tensors: dict[str, torch.Tensor]
    labels: torch.Tensor
    key: str
    producer_id: str
    codebook_id: str
    dataset_fingerprint: str
    size: tuple[int, int]
    grid: tuple[int, int] | None
    path: Path | None
    from_cache: bool

    def __getitem__(self, kind: str) -> torch.Tensor:
        if kind not in self.tensors:
            raise KeyError(f"feature {kind!r} was not computed; have {sorted(self.tensors)}")
        return self.tensors[kind]

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def feature_key(
    producer_hash: str, codebook_id: str, dataset_fingerprint: str, kinds: Sequence[str]
) -> str:
    """sha256 naming one cache entry."""
    parts = [FEATURES_FORMAT, FEATURES_VERSION, producer_hash, codebook_id, dataset_fingerprint]
    text = json.dumps([*parts, sorted(kinds)], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def compute_features(
    producer: Producer,
    codebook: Codebook,
    dataset: ImageDataset,
    kinds: Sequence[FeatureKind] = ("mean", "hist"),
    *,
    batch_size: int = 32,
    cache_dir: str | Path | None = None,
    progress: bool = False,
) -> Features:
    """Features of every image of ``dataset``, from the cache when possible.

    Args:
        producer: frozen; put in eval mode for the run and restored after.
        codebook: its D must be the producer's.
        dataset: images the producer can take (channels, at least one patch).
        kinds: features to compute (module docstring).
        batch_size: images encoded at once; memory is about batch·P·V·K floats.
        cache_dir: folder of the cache; ``None`` computes without caching.
        progress: a rich progress bar on stderr.

    Raises:
        DatasetError, IncompatibleInputError: from :func:`check_inputs`, before any encoding.
    """
    kinds = tuple(dict.fromkeys(kinds))
    for kind in kinds:
        if kind not in FEATURE_KINDS:
            raise ValueError(f"unknown feature kind {kind!r}; expected one of {FEATURE_KINDS}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    check_inputs(
        producer, codebook, n_images=len(dataset), channels=dataset.channels, size=dataset.size
    )
    ps = producer.geometry.patch_size
    grid = None if ps is None else patch_grid(dataset.size, ps)
    if "map" in kinds and grid is None:
        raise IncompatibleInputError("map features need a producer whose config has patch_size")
    pid = producer.producer_id
    key = feature_key(pid, codebook.id, dataset.fingerprint, kinds)
    path = None if cache_dir is None else Path(cache_dir) / f"{key}.safetensors"
    common = {
        "key": key,
        "producer_id": pid,
        "codebook_id": codebook.id,
        "dataset_fingerprint": dataset.fingerprint,
        "size": dataset.size,
        "grid": grid,
        "path": path,
    }
    if path is not None and path.is_file():
        cached = _read_cache(path, key, kinds, len(dataset))
        if cached is not None:
            return Features(tensors=cached, labels=dataset.labels, from_cache=True, **common)
    tensors = _encode_dataset(producer, codebook, dataset, kinds, grid, batch_size, progress)
    if path is not None:
        _write_cache(path, key, tensors, dataset, codebook, pid)
    return Features(tensors=tensors, labels=dataset.labels, from_cache=False, **common)


def _encode_dataset(
    producer: Producer,
    codebook: Codebook,
    dataset: ImageDataset,
    kinds: tuple[FeatureKind, ...],
    grid: tuple[int, int] | None,
    batch_size: int,
    progress: bool,
) -> dict[str, torch.Tensor]:
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in kinds}
    start, done = time.perf_counter(), 0
    with producer.frozen(), progress_bar(progress, "{task.fields[rate]:.1f} img/s") as bar:
        task = bar.add_task(f"features of {dataset.name}", total=len(dataset), rate=0.0)
        for images in dataset.batches(batch_size):
            activations = encode_activations(producer, codebook, images)
            for kind, value in pool_activations(activations, kinds, grid).items():
                parts[kind].append(value.float().cpu())
            done += images.shape[0]
            rate = done / max(time.perf_counter() - start, 1e-9)
            bar.update(task, advance=images.shape[0], rate=rate)
    return {kind: torch.cat(values) for kind, values in parts.items()}


def _write_cache(
    path: Path,
    key: str,
    tensors: dict[str, torch.Tensor],
    dataset: ImageDataset,
    codebook: Codebook,
    pid: str,
) -> None:
    metadata = {
        "format": FEATURES_FORMAT,
        "version": str(FEATURES_VERSION),
        "key": key,
        "producer_id": pid,
        "codebook_id": codebook.id,
        "dataset_fingerprint": dataset.fingerprint,
        "dataset_name": dataset.name,
        "n": str(len(dataset)),
        "size": f"{dataset.size[0]}x{dataset.size[1]}",
    }
    payload = {k: v.contiguous() for k, v in tensors.items()}
    kinds = tuple(tensors)
    n = len(dataset)
    atomic_write(
        path,
        save(payload, metadata=metadata),
        verify=lambda tmp: _load_cache(tmp, key, kinds, n),  # type: ignore[arg-type]
    )


def _load_cache(
    path: Path, key: str, kinds: tuple[FeatureKind, ...], n: int
) -> dict[str, torch.Tensor]:
    """The cached tensors of ``key``; raises CheckpointError for a damaged or foreign file."""
    tensors, meta = load_tensors(
        path, lambda problem, p: CheckpointError(f"unreadable feature cache ({problem})", p)
    )
    if meta.get("format") != FEATURES_FORMAT or meta.get("key") != key:
        raise CheckpointError("feature cache does not match its key", path)
    missing = [k for k in kinds if k not in tensors]
    if missing or any(tensors[k].shape[0] != n for k in kinds):
        raise CheckpointError(f"feature cache lacks {missing} or holds another n than {n}", path)
    return {k: tensors[k] for k in kinds}


def _read_cache(
    path: Path, key: str, kinds: tuple[FeatureKind, ...], n: int
) -> dict[str, torch.Tensor] | None:
    """The cached tensors, or ``None`` (with a warning) when the file is damaged or foreign:
    the caller then recomputes and overwrites it."""
    try:
        return _load_cache(path, key, kinds, n)
    except CheckpointError as err:
        warnings.warn(f"{err}; recomputing", stacklevel=3)
        return None
