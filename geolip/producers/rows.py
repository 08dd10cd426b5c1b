"""Producer rows → axes: encode a set of inputs, aggregate the rows, collapse antipodal pairs."""

from __future__ import annotations

from typing import Literal

import torch

from geolip._progress import progress_bar
from geolip.producers.contract import Producer
from geolip.solvers.projective import Collapse, antipodal_collapse

Aggregation = Literal["mean", "median"]


@torch.no_grad()
def collect_rows(
    producer: Producer, images: torch.Tensor, batch_size: int = 16, progress: bool = False
) -> torch.Tensor:
    """Encode ``images`` (N, C, H, W) in batches → M (N, P, V, D) float32 on the CPU."""
    out: list[torch.Tensor] = []
    with progress_bar(progress) as bar:
        task = bar.add_task("encoding calibration set", total=images.shape[0])
        for start in range(0, images.shape[0], batch_size):
            chunk = images[start : start + batch_size].to(producer.device)
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


def rows_to_axes(
    producer: Producer,
    images: torch.Tensor,
    aggregation: Aggregation = "mean",
    threshold: float = -0.9,
    batch_size: int = 16,
    progress: bool = False,
) -> tuple[torch.Tensor, Collapse]:
    """(M (N, P, V, D), the antipodal collapse of its aggregated (V, D) rows)."""
    m = collect_rows(producer, images, batch_size, progress)
    return m, antipodal_collapse(aggregate_rows(m, aggregation), threshold)
