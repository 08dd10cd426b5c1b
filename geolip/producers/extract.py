"""Producer + calibration set → Codebook, always reported beside three nulls (spec §B.1, §B.4).

The upstream codebook statistics are reproduced by i.i.d. random rows, so an extracted codebook
carries (1) its percentile in the i.i.d. "rows" null, (2) the same extraction run on the
untrained network (same architecture, fresh init) and (3) the same extraction on shuffled
calibration images (pixels permuted within each image and channel: same values, no structure).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Literal, Protocol

import torch
from rich.progress import Progress

from geolip.codebook import (
    Codebook,
    ControlReport,
    ExtractionInfo,
    Lineage,
    ProducerInfo,
    canonicalize_axes,
)
from geolip.producers.noise import calibration_set
from geolip.solvers.null import null_codebook_stats
from geolip.solvers.projective import Collapse, antipodal_collapse, deviation, statute

Aggregation = Literal["mean", "median"]


class RowProducer(Protocol):
    """The producer contract: images (B, C, H, W) → unit rows M (B, P, V, D), raster patches."""

    def encode_rows(self, x: torch.Tensor) -> torch.Tensor: ...


def producer_device(producer: object) -> torch.device:
    """Device of the producer's first parameter (CPU for parameter-free producers)."""
    params = getattr(producer, "parameters", None)
    first = next(iter(params()), None) if callable(params) else None
    return first.device if first is not None else torch.device("cpu")


@torch.no_grad()
def collect_rows(
    producer: RowProducer, images: torch.Tensor, batch_size: int = 16, progress: bool = False
) -> torch.Tensor:
    """Encode ``images`` (N, C, H, W) in batches → M (N, P, V, D) float32 on the CPU."""
    device = producer_device(producer)
    out: list[torch.Tensor] = []
    with Progress(transient=True, disable=not progress) as bar:
        task = bar.add_task("encoding calibration set", total=images.shape[0])
        for start in range(0, images.shape[0], batch_size):
            chunk = images[start : start + batch_size].to(device)
            out.append(producer.encode_rows(chunk).float().cpu())
            bar.advance(task, chunk.shape[0])
    return torch.cat(out)


def aggregate_rows(m: torch.Tensor, aggregation: Aggregation = "mean") -> torch.Tensor:
    """M (N, P, V, D) → (V, D): aggregate over patches, then over images (upstream order)."""
    if aggregation == "mean":
        return m.double().mean(dim=1).mean(dim=0)
    if aggregation == "median":
        return m.double().median(dim=1).values.median(dim=0).values
    raise ValueError(f"aggregation must be 'mean' or 'median', got {aggregation!r}")


def shuffle_pixels(images: torch.Tensor, seed: int) -> torch.Tensor:
    """Permute pixel positions independently within every image and channel (values kept)."""
    n, c, h, w = images.shape
    gen = torch.Generator(device="cpu").manual_seed(seed)
    order = torch.rand(n, c, h * w, generator=gen).argsort(dim=-1).to(images.device)
    return images.reshape(n, c, h * w).gather(-1, order).reshape(n, c, h, w)


def _extract(
    producer: RowProducer,
    images: torch.Tensor,
    aggregation: Aggregation,
    threshold: float,
    batch_size: int,
    progress: bool,
) -> tuple[torch.Tensor, Collapse]:
    m = collect_rows(producer, images, batch_size, progress)
    return m, antipodal_collapse(aggregate_rows(m, aggregation), threshold)


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


def producer_info(producer: object) -> ProducerInfo:
    """Kind, preset name and sha256 of the config and of the weights (sorted state dict)."""
    config = getattr(producer, "config", None)
    config_hash = None
    if config is not None and hasattr(config, "model_dump"):
        text = json.dumps(config.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        config_hash = hashlib.sha256(text.encode()).hexdigest()
    weights_hash = None
    if hasattr(producer, "state_dict"):
        h = hashlib.sha256()
        for key, value in sorted(producer.state_dict().items()):
            h.update(key.encode())
            h.update(value.detach().cpu().contiguous().float().numpy().tobytes())
        weights_hash = h.hexdigest()
    kind = "".join(f"_{ch.lower()}" if ch.isupper() else ch for ch in type(producer).__name__)
    return ProducerInfo(
        kind=kind.lstrip("_"),
        name=getattr(producer, "preset", None),
        config_sha256=config_hash,
        weights_sha256=weights_hash,
    )


def fresh_init(producer: torch.nn.Module, seed: int) -> torch.nn.Module:
    """The same architecture freshly initialised under ``seed`` (global RNG left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        twin = type(producer)(producer.config)  # type: ignore[call-arg]
    twin.preset = getattr(producer, "preset", None)
    return twin.to(producer_device(producer)).eval()


def extract_codebook(
    producer: RowProducer,
    calibration: str = "sixteen_noise",
    n: int = 64,
    seed: int = 0,
    aggregation: Aggregation = "mean",
    *,
    size: int = 64,
    threshold: float = -0.9,
    batch_size: int = 16,
    null_trials: int = 300,
    controls: bool = True,
    untrained: Callable[[], RowProducer] | None = None,
    name: str | None = None,
    progress: bool = False,
) -> Codebook:
    """Extract a producer's codebook and measure it against the i.i.d. null and two controls.

    Args:
        producer: any object with ``encode_rows`` (an ``nn.Module`` with a pydantic ``config``
            gets the untrained control automatically).
        calibration: a :func:`geolip.producers.noise.calibration_set` name.
        n: calibration images (exactly n), ``size``×``size``, seeded by ``seed``.
        aggregation: how rows are averaged over patches, then images.
        threshold: antipodal pair threshold (cosine).
        null_trials: trials of the i.i.d. rows null.
        controls: run the untrained and shuffled-calibration controls.
        untrained: factory of the untrained control (default: fresh init of the same class).

    Returns:
        A Codebook whose meta holds producer, extraction settings, quality with the null report
        and the controls, and per-axis stats ``usage``, ``pair_flag`` and ``stability``.
    """
    was_training = getattr(producer, "training", False)
    if hasattr(producer, "eval"):
        producer.eval()
    try:
        channels = getattr(getattr(producer, "config", None), "channels", 3)
        images, _ = calibration_set(
            calibration,
            n,
            size=size,
            channels=channels,
            seed=seed,
            device=producer_device(producer),
        )
        m, c = _extract(producer, images, aggregation, threshold, batch_size, progress)
        v = m.shape[2]
        cb = Codebook.from_axes(
            c.axes,
            name=name or f"{calibration}-n{n}",
            stats=_axis_stats(m, c, canonicalize_axes(c.axes)),
            producer=producer_info(producer),
            extraction=ExtractionInfo(
                calibration=calibration,
                n=n,
                seed=seed,
                aggregation=aggregation,
                pair_threshold=threshold,
                n_rows=v,
                n_pairs=c.n_pairs,
            ),
            lineage=Lineage(operation="extract", parameters={"size": size}),
        )
        quality = cb.assess(null_trials=null_trials, seed=seed)
        if controls:
            null = null_codebook_stats(v, cb.dim, null_trials, "rows", threshold, seed)
            make_untrained = untrained or (lambda: fresh_init(producer, seed + 1))  # type: ignore[arg-type]
            runs = {
                "untrained": (make_untrained(), images, "same architecture, fresh initialisation"),
                "shuffled_calibration": (
                    producer,
                    shuffle_pixels(images, seed + 2),
                    "calibration pixels permuted within each image and channel",
                ),
            }
            reports = []
            for label, (model, imgs, description) in runs.items():
                _, cc = _extract(model, imgs, aggregation, threshold, batch_size, progress)
                control = Codebook.from_axes(cc.axes)
                dev = deviation(control.axes)
                reports.append(
                    ControlReport(
                        name=label,
                        description=description,
                        n_axes=cc.n_axes,
                        n_pairs=cc.n_pairs,
                        deviation=dev,
                        statute=statute(dev, cc.n_pairs, cc.n_axes, v).statute,
                        null_percentile=null.percentile(dev),
                        distance_to_observed=cb.distance(control),
                    )
                )
            quality = quality.model_copy(update={"controls": reports})
        return cb.with_meta(quality=quality)
    finally:
        if was_training and hasattr(producer, "train"):
            producer.train()
