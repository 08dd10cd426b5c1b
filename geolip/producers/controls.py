"""Controls of an extraction: the same recipe on inputs where the producer's training should
not matter, each placed in the i.i.d. null and measured against the observed codebook.

A control that cannot differ from the observed input is no control, so each one states what
it changes: the weights (``untrained``: same architecture, fresh initialisation) or the
calibration (``shuffled_calibration``: pixel positions permuted within each image and channel).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from geolip.codebook import Codebook, ControlReport
from geolip.producers.contract import Producer
from geolip.producers.rows import rows_to_axes
from geolip.solvers.null import null_codebook_stats
from geolip.solvers.projective import deviation, statute


def shuffle_pixels(images: torch.Tensor, seed: int) -> torch.Tensor:
    """Permute pixel positions independently within every image and channel (values kept)."""
    n, c, h, w = images.shape
    gen = torch.Generator(device="cpu").manual_seed(seed)
    order = torch.rand(n, c, h * w, generator=gen).argsort(dim=-1).to(images.device)
    return images.reshape(n, c, h * w).gather(-1, order).reshape(n, c, h, w)


def extraction_controls(
    producer: Producer,
    observed: Codebook,
    images: torch.Tensor,
    *,
    null_trials: int = 300,
    untrained: Callable[[], Producer] | None = None,
    batch_size: int = 16,
    progress: bool = False,
) -> list[ControlReport]:
    """Repeat ``observed``'s extraction (its settings are read from its meta) on each control.

    Args:
        producer: the producer ``observed`` came from.
        observed: an extracted codebook (its meta.extraction gives seed, rows, threshold).
        images: the calibration images it was extracted from, (N, C, H, W).
        null_trials: trials of the i.i.d. rows null each control is placed in.
        untrained: factory of the untrained control (default: ``producer.untrained_twin``).

    Returns:
        One report per control: axes, pairs, deviation, statute, percentile in the same i.i.d.
        rows null as ``observed`` and the aligned RMS chordal distance to ``observed``.
    """
    ext = observed.meta.extraction
    if ext is None:
        raise ValueError("controls need an extracted codebook (meta.extraction is unset)")
    seed, v = ext.seed, ext.n_rows
    null = null_codebook_stats(v, observed.dim, null_trials, "rows", ext.pair_threshold, seed)
    make_untrained = untrained or (lambda: producer.untrained_twin(seed + 1))
    runs = {
        "untrained": (make_untrained(), images, "same architecture, fresh initialisation"),
        "shuffled_calibration": (
            producer,
            shuffle_pixels(images, seed + 2),
            "calibration pixels permuted within each image and channel",
        ),
    }
    reports = []
    for label, (model, inputs, description) in runs.items():
        with model.frozen():
            _, c = rows_to_axes(
                model, inputs, ext.aggregation, ext.pair_threshold, batch_size, progress
            )
        control = Codebook.from_axes(c.axes)
        dev = deviation(control.axes)
        reports.append(
            ControlReport(
                name=label,
                description=description,
                n_axes=c.n_axes,
                n_pairs=c.n_pairs,
                deviation=dev,
                statute=statute(dev, c.n_pairs, c.n_axes, v).statute,
                null_percentile=null.percentile(dev),
                distance_to_observed=observed.distance(control),
            )
        )
    return reports
