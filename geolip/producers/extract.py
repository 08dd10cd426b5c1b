"""Producer + calibration set → Codebook, reported beside its i.i.d. null (spec §B.1, §B.4).

The upstream codebook statistics are reproduced by i.i.d. random rows, so an extracted codebook
always carries its percentile in the i.i.d. "rows" null (:meth:`Codebook.assess`), and by
default the controls of :mod:`geolip.producers.controls`: the same extraction run on the
untrained network, on another noise family, on all-zero images and (for calibrations with
spatial structure) on calibration that lost it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from geolip.codebook import Codebook, ExtractionInfo, Lineage, canonicalize_axes
from geolip.producers.calibration import calibration_images, image_size
from geolip.producers.contract import Producer
from geolip.producers.controls import extraction_controls, skipped_controls
from geolip.producers.rows import Aggregation, rows_to_axes
from geolip.solvers.projective import Collapse


def _axis_stats(m: torch.Tensor, c: Collapse, axes: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-axis usage (rows quantised to the axis), pair flag and stability.

    Stability of a row index is the mean resultant length ‖mean over images and patches of
    M[..., v, :]‖ ∈ [0, 1]; an axis made from a pair gets the mean of its two rows'.
    """
    rows = m.reshape(-1, m.shape[-1])
    nearest = (rows @ axes.float().T).abs().argmax(dim=1)
    usage = torch.bincount(nearest, minlength=axes.shape[0]).float()
    length = m.double().mean(dim=(0, 1)).norm(dim=-1)  # (V,)
    stability = torch.cat([length[c.pairs].mean(dim=1), length[c.unpaired]]).float()
    pair_flag = torch.cat([torch.ones(c.n_pairs), torch.zeros(len(c.unpaired))])
    return {"usage": usage, "pair_flag": pair_flag, "stability": stability}


def extract_codebook(
    producer: Producer,
    calibration: str = "sixteen_noise",
    n: int | None = None,
    seed: int = 0,
    aggregation: Aggregation = "mean",
    *,
    size: int | None = None,
    threshold: float = -0.9,
    batch_size: int = 16,
    null_trials: int = 300,
    controls: bool = True,
    untrained: Callable[[], Producer] | None = None,
    name: str | None = None,
    progress: bool = False,
) -> Codebook:
    """Extract a producer's codebook and measure it against the i.i.d. null (and controls).

    Args:
        producer: any :class:`~geolip.producers.contract.Producer`; encoded under ``frozen()``.
        calibration: a :func:`geolip.data.noise.calibration_set` name (``n`` images, exactly,
            ``size``×``size``, seeded by ``seed``; 64 and 64 unless given) or any dataset spec,
            which names its own images (:func:`geolip.producers.calibration.calibration_images`).
        aggregation, threshold: rows averaged over patches, then images; antipodal pair cosine.
        null_trials: trials of the i.i.d. rows null.
        controls: run :func:`geolip.producers.controls.extraction_controls` (``untrained``:
            factory of that control, default the producer's untrained twin).

    Returns:
        A Codebook whose meta holds producer, extraction settings, quality with the null report
        (and the controls), and per-axis stats ``usage``, ``pair_flag`` and ``stability``.
    """
    c_in, device = producer.geometry.channels, producer.device
    images, label = calibration_images(calibration, c_in, n=n, size=size, seed=seed, device=device)
    with producer.frozen():
        m, c = rows_to_axes(producer, images, aggregation, threshold, batch_size, progress)
    extraction = ExtractionInfo(
        calibration=label,
        n=images.shape[0],
        seed=seed,
        aggregation=aggregation,
        pair_threshold=threshold,
        n_rows=m.shape[2],
        n_pairs=c.n_pairs,
    )
    cb = _codebook_of(m, c, producer, extraction, name or f"{label}-n{images.shape[0]}", images)
    quality = cb.assess(null_trials=null_trials, seed=seed)
    if controls:
        reports = extraction_controls(
            producer,
            cb,
            images,
            null_trials=null_trials,
            untrained=untrained,
            batch_size=batch_size,
            progress=progress,
        )
        skipped = skipped_controls(calibration)
        quality = quality.model_copy(update={"controls": reports, "controls_skipped": skipped})
    return cb.with_meta(quality=quality)


def _codebook_of(
    m: torch.Tensor,
    c: Collapse,
    producer: Producer,
    extraction: ExtractionInfo,
    name: str,
    images: torch.Tensor,
) -> Codebook:
    """The codebook of collapsed rows, with per-axis stats, producer and extraction meta."""
    return Codebook.from_axes(
        c.axes,
        name=name,
        stats=_axis_stats(m, c, canonicalize_axes(c.axes)),
        producer=producer.producer_info(),
        extraction=extraction,
        lineage=Lineage(operation="extract", parameters={"size": image_size(images)}),
    )
