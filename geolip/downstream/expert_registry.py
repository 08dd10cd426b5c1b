"""Experts by name, as the command line names them: ``minilm``, ``hog``, ``cnn``, ``effnet``,
``producer`` (a geolip producer with its codebook)."""

from __future__ import annotations

from pathlib import Path

from geolip.codebook import Codebook
from geolip.downstream.cnn_expert import CNNImage
from geolip.downstream.experts import (
    EfficientNetImage,
    Expert,
    HOGImage,
    MiniLMText,
    ProducerImage,
)
from geolip.errors import IncompatibleInputError

EXPERT_NAMES = ("minilm", "hog", "cnn", "effnet", "producer")
IMAGE_EXPERTS = ("hog", "cnn", "effnet", "producer")
DEFAULT_PRODUCER = "pretrained:h2-gaussian"


def producer_expert(source: str = DEFAULT_PRODUCER, codebook: str | Path | None = None) -> Expert:
    """A producer and its codebook as an image expert. Without ``codebook`` one is extracted
    (``sixteen_noise`` calibration, 64 images, seed 0, 20 null trials, no controls) and its id
    recorded in the expert's description."""
    from geolip.producers.extract import extract_codebook
    from geolip.producers.loading import load_producer, require_producer

    producer = require_producer(load_producer(source), source)
    if codebook is None:
        cb = extract_codebook(producer, n=64, seed=0, null_trials=20, controls=False)
    else:
        cb = Codebook.load(codebook)
    return ProducerImage(producer=producer, codebook=cb, source=source)


def make_expert(
    name: str,
    *,
    producer: str = DEFAULT_PRODUCER,
    codebook: str | Path | None = None,
    text_pooling: str = "mean",
) -> Expert:
    """The expert called ``name`` (see :data:`EXPERT_NAMES`).

    Raises:
        IncompatibleInputError: an unknown name or text pooling.
    """
    if name == "minilm":
        if text_pooling not in ("mean", "max", "cls"):
            raise IncompatibleInputError(
                f"text pooling must be mean, max or cls, got {text_pooling!r}"
            )
        return MiniLMText(pooling=text_pooling)  # type: ignore[arg-type]
    if name == "hog":
        return HOGImage()
    if name == "cnn":
        return CNNImage()
    if name == "effnet":
        return EfficientNetImage()
    if name == "producer":
        return producer_expert(producer, codebook)
    raise IncompatibleInputError(
        f"unknown expert {name!r}; expected one of {', '.join(EXPERT_NAMES)}"
    )
