"""ImageDataset: construction checks, lazy transforms, fingerprints that track every change."""

from __future__ import annotations

import pytest
import torch

from geolip.data import ImageDataset
from geolip.errors import DatasetError


def _toy(n: int = 6, c: int = 1, size: int = 4) -> ImageDataset:
    g = torch.Generator().manual_seed(0)
    images = torch.rand(n, c, size, size, generator=g)
    labels = torch.arange(n) % 2
    captions = [f"image {i}" for i in range(n)]
    return ImageDataset.from_tensors("toy", images, labels, ("even", "odd"), captions)


def test_from_tensors_keeps_images_and_refuses_inconsistent_input() -> None:
    ds = _toy()
    assert len(ds) == 6 and ds.size == (4, 4) and ds.channels == 1
    assert torch.equal(ds.batch([2, 0])[0], ds.images[2])
    with pytest.raises(DatasetError, match="6 images but 5 labels"):
        ImageDataset.from_tensors("bad", torch.zeros(6, 1, 4, 4), torch.zeros(5), ("a",))
    with pytest.raises(DatasetError, match="labels outside"):
        ImageDataset.from_tensors("bad", torch.zeros(2, 1, 4, 4), torch.tensor([0, 3]), ("a",))
    with pytest.raises(DatasetError, match="NaN"):
        ImageDataset.from_tensors("bad", torch.full((1, 1, 2, 2), float("nan")), [0], ("a",))
    with pytest.raises(DatasetError, match=r"\(N, C, H, W\)"):
        ImageDataset.from_tensors("bad", torch.zeros(2, 4, 4), [0, 0], ("a",))


def test_subset_shuffle_split_first() -> None:
    ds = _toy()
    sub = ds.subset([4, 1])
    assert torch.equal(sub.images, ds.images[[4, 1]])
    assert sub.labels.tolist() == [0, 1] and sub.captions == ("image 4", "image 1")
    a, b = ds.shuffled(3), ds.shuffled(3)
    assert torch.equal(a.images, b.images) and a.fingerprint == b.fingerprint
    assert a.fingerprint != ds.shuffled(4).fingerprint
    head, tail = ds.split(4)
    assert len(head) == 4 and len(tail) == 2 and torch.equal(tail.images, ds.images[4:])
    assert ds.first(None) is ds and len(ds.first(2)) == 2
    with pytest.raises(DatasetError, match=r"n must be in 1\.\.6"):
        ds.first(7)
    with pytest.raises(DatasetError, match="out of range"):
        ds.subset([6])


def test_batches_cover_every_image_once_in_order() -> None:
    ds = _toy(n=7)
    assert torch.equal(torch.cat(list(ds.batches(3))), ds.images)
    assert [b.shape[0] for b in ds.batches(3)] == [3, 3, 1]


def test_transforms_are_lazy_and_change_the_fingerprint() -> None:
    ds = _toy()
    up = ds.resized(8)
    assert up.images.shape == (6, 1, 8, 8) and up.size == (8, 8)
    constant = ImageDataset.from_tensors("c", torch.full((1, 1, 4, 4), 0.25), [0], ("a",))
    assert torch.allclose(constant.resized((6, 10)).images, torch.full((1, 1, 6, 10), 0.25))
    rgb = ds.with_channels(3)
    assert rgb.images.shape == (6, 3, 4, 4) and torch.equal(rgb.images[:, 2], ds.images[:, 0])
    assert torch.allclose(rgb.with_channels(1).images, ds.images)
    with pytest.raises(DatasetError, match="cannot turn 3 channels into 2"):
        rgb.with_channels(2)
    z = ds.standardized().images
    assert torch.allclose(z.mean(dim=(1, 2, 3)), torch.zeros(6), atol=1e-6)
    assert torch.allclose(z.std(dim=(1, 2, 3), unbiased=False), torch.ones(6), atol=1e-4)
    prints = {ds.fingerprint, up.fingerprint, rgb.fingerprint, ds.standardized().fingerprint}
    assert len(prints) == 4
    assert ds.resized(4) is ds and ds.with_channels(1) is ds


def test_fingerprint_depends_on_pixels_and_labels() -> None:
    images = torch.zeros(2, 1, 2, 2)
    a = ImageDataset.from_tensors("a", images, [0, 0], ("x", "y"))
    b = ImageDataset.from_tensors("a", images, [0, 1], ("x", "y"))
    c = ImageDataset.from_tensors("a", images + 1e-7, [0, 0], ("x", "y"))
    assert len({a.fingerprint, b.fingerprint, c.fingerprint}) == 3
