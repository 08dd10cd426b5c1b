"""scikit-learn's handwritten digits: 1,797 grey 8 × 8 images of 0–9 (bundled, no download)."""

from __future__ import annotations

import torch

from geolip.data.dataset import ImageDataset

DIGIT_CLASSES = tuple(str(d) for d in range(10))


def load_digits(n: int | None = None, *, seed: int = 0) -> ImageDataset:
    """The digits in a seeded random order, values in [0, 1] (the 0–16 counts divided by 16).

    Args:
        n: keep the first n of the shuffled images (all 1,797 when ``None``).
        seed: the shuffle; the same seed gives the same images in the same order.

    Returns:
        An :class:`ImageDataset` of (N, 1, 8, 8) images, labels 0–9, classes ``"0"``–``"9"``.
        Use ``.resized(64)`` and ``.with_channels(3)`` for a 3-channel producer.
    """
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = torch.from_numpy(bunch.images).float().div(16.0).unsqueeze(1)
    labels = torch.from_numpy(bunch.target).long()
    dataset = ImageDataset.from_tensors("digits", images, labels, DIGIT_CLASSES)
    return dataset.shuffled(seed).first(n)
