"""Controls of an extraction: the same recipe on inputs where the producer's training should
not matter, each placed in the i.i.d. null and measured against the observed codebook.

A control that cannot differ from the observed input is no control, so each one states what
it changes: the weights (``untrained``: same architecture, fresh initialisation) or the
calibration (``other_calibration``: another noise family, :data:`OTHER_CALIBRATION`;
``constant_input``: all-zero images; ``shuffled_calibration``: pixel positions permuted within
each image and channel). Shuffling leaves a calibration of i.i.d. pixels unchanged in
distribution (:data:`IID_CALIBRATIONS`), so there it is skipped and the reason recorded.

Every control's distance to the observed codebook is placed in the distance null: the aligned
distance between pairs of i.i.d. codebooks of the same K, K' and D
(:func:`geolip.solvers.alignment.distance_null`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from geolip.codebook import Codebook, ControlReport
from geolip.codebook.schema import ControlName, SkippedControl
from geolip.data.noise import CALIBRATIONS, calibration_set
from geolip.producers.contract import Producer
from geolip.producers.rows import rows_to_axes
from geolip.solvers.alignment import distance_null, distance_percentile, distance_z_score
from geolip.solvers.null import NullDistribution, null_codebook_stats
from geolip.solvers.projective import Collapse, deviation, statute

IID_CALIBRATIONS = frozenset({"gaussian", "uniform"})
"""Calibrations whose pixels are i.i.d.: a pixel shuffle leaves their distribution unchanged."""

OTHER_CALIBRATION = {
    "gaussian": "ood_sixteen",
    "uniform": "ood_sixteen",
    "sixteen_noise": "ood_sixteen",
    "ood_sixteen": "sixteen_noise",
}
"""The calibration of the ``other_calibration`` control, per observed calibration: a family the
producer was not calibrated on (``gaussian`` for a name not listed here)."""


def shuffle_pixels(images: torch.Tensor, seed: int) -> torch.Tensor:
    """Permute pixel positions independently within every image and channel (values kept)."""
    n, c, h, w = images.shape
    gen = torch.Generator(device="cpu").manual_seed(seed)
    order = torch.rand(n, c, h * w, generator=gen).argsort(dim=-1).to(images.device)
    return images.reshape(n, c, h * w).gather(-1, order).reshape(n, c, h, w)


def other_calibration(name: str) -> str:
    """The calibration name of the ``other_calibration`` control; never ``name`` itself."""
    other = OTHER_CALIBRATION.get(name, "gaussian")
    assert other != name and other in CALIBRATIONS
    return other


def skipped_controls(calibration: str) -> list[SkippedControl]:
    """The controls :func:`extraction_controls` skips for ``calibration``, with reasons."""
    if calibration not in IID_CALIBRATIONS:
        return []
    reason = (
        f"{calibration!r} calibration has i.i.d. pixels: shuffling them leaves its "
        "distribution unchanged, so the control could not fail"
    )
    return [SkippedControl(name="shuffled_calibration", reason=reason)]


def control_inputs(
    calibration: str, images: torch.Tensor, seed: int
) -> dict[str, tuple[torch.Tensor, str]]:
    """The inputs of the calibration controls, in run order.

    Returns:
        ``{name: (inputs (N, C, H, W) like ``images``, description)}`` for
        ``other_calibration``, ``constant_input`` and, unless :func:`skipped_controls` skips it,
        ``shuffled_calibration``.
    """
    n, c, h, w = images.shape
    other = other_calibration(calibration)
    size = h if h == w else (h, w)
    other_images = calibration_set(
        other,
        n,
        size=size,
        channels=c,
        seed=seed + 3,
        device=images.device,  # type: ignore[arg-type]
    )[0].to(images.dtype)
    runs = {
        "other_calibration": (
            other_images,
            f"calibration from another noise family: {other!r} instead of {calibration!r}",
        ),
        "constant_input": (torch.zeros_like(images), "all-zero images (a constant input)"),
    }
    if not skipped_controls(calibration):
        runs["shuffled_calibration"] = (
            shuffle_pixels(images, seed + 2),
            "calibration pixels permuted within each image and channel",
        )
    return runs


def extraction_controls(
    producer: Producer,
    observed: Codebook,
    images: torch.Tensor,
    *,
    null_trials: int = 300,
    untrained: Callable[[], Producer] | None = None,
    batch_size: int = 16,
    progress: bool = False,
    distance_null_trials: int = 16,
) -> list[ControlReport]:
    """Repeat ``observed``'s extraction (its settings are read from its meta) on each control.

    Args:
        producer: the producer ``observed`` came from.
        observed: an extracted codebook (its meta.extraction gives seed, rows, threshold).
        images: the calibration images it was extracted from, (N, C, H, W).
        null_trials: trials of the i.i.d. rows null each control is placed in.
        untrained: factory of the untrained control (default: ``producer.untrained_twin``).
        distance_null_trials: pairs of i.i.d. codebooks behind each distance null (≥ 2).

    Returns:
        One report per control run (``untrained``, ``other_calibration``, ``constant_input``,
        then ``shuffled_calibration`` unless skipped, see :func:`skipped_controls`): axes,
        pairs, deviation, statute, percentile in the same i.i.d. rows null as ``observed``, the
        aligned RMS chordal distance to ``observed`` and where it falls in the distance null.
    """
    ext = observed.meta.extraction
    if ext is None:
        raise ValueError("controls need an extracted codebook (meta.extraction is unset)")
    seed, v = ext.seed, ext.n_rows
    null = null_codebook_stats(v, observed.dim, null_trials, "rows", ext.pair_threshold, seed)
    make_untrained = untrained or (lambda: producer.untrained_twin(seed + 1))
    runs = {"untrained": (make_untrained(), images, "same architecture, fresh initialisation")}
    for label, (inputs, description) in control_inputs(ext.calibration, images, seed).items():
        runs[label] = (producer, inputs, description)
    reports = []
    for label, (model, inputs, description) in runs.items():  # type: ignore[assignment]
        with model.frozen():
            _, c = rows_to_axes(
                model, inputs, ext.aggregation, ext.pair_threshold, batch_size, progress
            )
        reports.append(
            control_report(label, description, observed, c, v, null, seed, distance_null_trials)
        )
    return reports


def control_report(
    name: ControlName,
    description: str,
    observed: Codebook,
    control: Collapse,
    n_rows: int,
    null: NullDistribution,
    seed: int,
    distance_null_trials: int = 16,
) -> ControlReport:
    """The report of one control whose ``n_rows`` rows collapsed to ``control``: its deviation in
    ``null`` (the observed codebook's i.i.d. rows null) and its aligned distance to
    ``observed`` in the distance null of i.i.d. codebooks of the same sizes."""
    cb = Codebook.from_axes(control.axes)
    dev = deviation(cb.axes)
    distance = observed.distance(cb)
    null_d = distance_null(
        observed.size, cb.size, observed.dim, null_trials=distance_null_trials, seed=seed
    )
    mean, sd = null_d.mean().item(), null_d.std().item()
    return ControlReport(
        name=name,
        description=description,
        n_axes=control.n_axes,
        n_pairs=control.n_pairs,
        deviation=dev,
        statute=statute(dev, control.n_pairs, control.n_axes, n_rows).statute,
        null_percentile=null.percentile(dev),
        distance_to_observed=distance,
        distance_null_mean=mean,
        distance_null_sd=sd,
        distance_null_trials=distance_null_trials,
        distance_z=distance_z_score(distance, mean, sd),
        distance_percentile=distance_percentile(distance, null_d),
    )
