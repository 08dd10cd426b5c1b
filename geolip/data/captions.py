"""Image–caption pairs: templated captions for digit images, and a seeded held-out split.

Shapes carry their own captions (a scene description per image). Digit images (scikit-learn
digits, MNIST) get one templated caption each, the template drawn from a seed, so the same
class is described in several ways ("a handwritten seven", "the digit 7", ...): a text
expert must then map different sentences of one class close together, and retrieval is
judged by class (``relevance="label"``). Shapes are judged by identical caption text.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

import torch

from geolip.data.dataset import ImageDataset
from geolip.data.digits import DIGIT_CLASSES
from geolip.errors import DatasetError

Relevance = Literal["caption", "label"]

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
DIGIT_TEMPLATES = (
    "a handwritten {word}",
    "the digit {word}",
    "a hand-drawn number {word}",
    "the number {digit} written by hand",
    "a scanned handwritten {digit}",
    "a small picture of the digit {digit}",
)
"""``{word}`` is the digit's English name, ``{digit}`` its numeral."""


def digit_captions(labels: torch.Tensor, seed: int = 0) -> tuple[str, ...]:
    """One templated caption per label in 0..9, the template of each drawn from ``seed``."""
    y = torch.as_tensor(labels).long().flatten()
    if y.numel() and (y.min() < 0 or y.max() > 9):
        raise DatasetError("digit captions need labels in 0..9")
    gen = torch.Generator().manual_seed(seed)
    picks = torch.randint(len(DIGIT_TEMPLATES), (y.numel(),), generator=gen).tolist()
    return tuple(
        DIGIT_TEMPLATES[t].format(word=DIGIT_WORDS[d], digit=d)
        for t, d in zip(picks, y.tolist(), strict=True)
    )


def with_captions(dataset: ImageDataset, seed: int = 0) -> ImageDataset:
    """``dataset`` with a caption per image: its own captions if it has them, templated
    digit captions for digit classes ("0".."9"); the images and fingerprint are unchanged.

    Raises:
        DatasetError: a dataset without captions whose classes are not digits.
    """
    if dataset.captions is not None:
        return dataset
    if dataset.classes != DIGIT_CLASSES:
        raise DatasetError(
            f"{dataset.name}: has no captions, and captions can be templated only for the "
            f"digit classes 0..9 (its classes: {', '.join(dataset.classes[:6])}...)"
        )
    return replace(dataset, captions=digit_captions(dataset.labels, seed))


def default_relevance(dataset: ImageDataset) -> Relevance:
    """``label`` for digit classes (templated captions say only the class), else ``caption``."""
    return "label" if dataset.classes == DIGIT_CLASSES else "caption"


def relevance_groups(dataset: ImageDataset, relevance: Relevance) -> torch.Tensor:
    """(N,) int64 group ids: images (and their captions) of one group answer each other.

    ``caption``: identical caption text; ``label``: the same class.
    """
    if relevance == "label":
        return dataset.labels.clone()
    if relevance != "caption":
        raise DatasetError(f"relevance must be 'caption' or 'label', got {relevance!r}")
    if dataset.captions is None:
        raise DatasetError(f"{dataset.name}: relevance by caption needs captions")
    ids: dict[str, int] = {}
    return torch.tensor([ids.setdefault(c, len(ids)) for c in dataset.captions], dtype=torch.long)


def held_out_split(
    n: int, test_fraction: float = 0.25, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, test) int64 indices of a seeded random split of 0..n−1, both sorted.

    Raises:
        DatasetError: a fraction outside (0, 1) or a split leaving either side empty.
    """
    if not 0 < test_fraction < 1:
        raise DatasetError(f"test_fraction must be in (0, 1), got {test_fraction}")
    n_test = round(test_fraction * n)
    if n_test < 1 or n_test >= n:
        raise DatasetError(f"{n} items cannot be split with test_fraction {test_fraction}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[n_test:].sort().values, order[:n_test].sort().values
