"""Image files as tensors: grey and colour, standardised, and refusals naming the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from geolip.data.image_files import load_image_files
from geolip.errors import DatasetError


def save(path: Path, array: np.ndarray) -> Path:
    Image.fromarray(array).save(path)
    return path


def test_grey_and_colour_files_load_standardised(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    grey = save(tmp_path / "g.png", rng.integers(0, 255, (6, 5), dtype=np.uint8))
    rgb = [
        save(tmp_path / f"{i}.png", rng.integers(0, 255, (6, 5, 3), dtype=np.uint8))
        for i in range(2)
    ]
    assert load_image_files([grey]).shape == (1, 1, 6, 5)
    x = load_image_files(rgb)
    assert x.shape == (2, 3, 6, 5)
    assert torch.allclose(x.mean(dim=(1, 2, 3)), torch.zeros(2), atol=1e-5)
    assert torch.allclose(x.std(dim=(1, 2, 3), unbiased=False), torch.ones(2), atol=1e-4)
    raw = load_image_files(rgb[:1], standardize=False)
    expected = np.asarray(Image.open(rgb[0]), dtype=np.float32) / 255
    assert torch.allclose(raw[0].permute(1, 2, 0), torch.from_numpy(expected))


def test_mixed_sizes_and_non_images_are_refused_naming_the_file(tmp_path: Path) -> None:
    a = save(tmp_path / "a.png", np.zeros((6, 5), dtype=np.uint8))
    b = save(tmp_path / "b.png", np.zeros((4, 4), dtype=np.uint8))
    with pytest.raises(DatasetError, match=r"b\.png"):
        load_image_files([a, b])
    text = tmp_path / "c.png"
    text.write_text("not an image")
    with pytest.raises(DatasetError, match="not a readable image"):
        load_image_files([text])
    with pytest.raises(DatasetError, match="no image files"):
        load_image_files([])
