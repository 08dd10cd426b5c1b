"""Anchors that move on the sphere: the geodesic between a home and a current position, points
along it (SLERP), and the distribution of how far a set of anchors has drifted.

Upstream's constellation relay keeps a frozen *home* copy of every learned anchor and reports
the *drift* acos⟨home, anchor⟩ in radians; its GLFM card counts the anchors whose drift lies
within 0.05 of 0.29154 and calls that value a "binding constant" (spec §C.5, §D). The drift of
an Adam-trained parameter grows with lr × steps, so :func:`drift_summary` keeps the whole
histogram beside that count. Pure tensor math.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch

BINDING_CONSTANT = 0.29154
"""The drift (radians) upstream's GLFM card reports anchors converging to."""
BINDING_TOLERANCE = 0.05
"""Half-width of the "near 0.29" window of the card: |drift − 0.29154| < 0.05."""
DRIFT_BIN_WIDTH = 0.01
"""Histogram bin width in radians; bins start at 0, so histograms of different runs align."""
_SLERP_CLAMP = 1e-7


def geodesic_angle(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Angle between the directions of a and b, (..., D) → (...) in [0, π].

    Computed as 2·atan2(‖â − b̂‖, ‖â + b̂‖) of the normalised rows, accurate for angles near 0
    and π alike, where acos of the cosine loses half the digits (float32 acos cannot resolve
    angles below ~3e-4 rad). Zero rows give 0.
    """
    a_hat = torch.nn.functional.normalize(a, dim=-1)
    b_hat = torch.nn.functional.normalize(b, dim=-1)
    return 2 * torch.atan2((a_hat - b_hat).norm(dim=-1), (a_hat + b_hat).norm(dim=-1))


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """The point a fraction ``t`` along the great circle from a to b, (..., D) unit rows.

    Args:
        a, b: (..., D) unit rows (broadcast against each other).
        t: 0 gives a, 1 gives b; values outside [0, 1] extrapolate along the same circle.

    Returns:
        (..., D) unit rows sin((1−t)θ)/sin θ · a + sin(tθ)/sin θ · b, θ the angle between a
        and b. The cosine is clamped to [−1 + 1e-7, 1 − 1e-7], so for a = b (every anchor at its
        home, as at initialisation) the weights are (1 − t, t) to float precision and the
        gradient with respect to b stays finite; the result is renormalised.
    """
    cos = (a * b).sum(dim=-1, keepdim=True).clamp(-1 + _SLERP_CLAMP, 1 - _SLERP_CLAMP)
    theta = torch.acos(cos)
    sin = torch.sin(theta)
    point = torch.sin((1 - t) * theta) / sin * a + torch.sin(t * theta) / sin * b
    return torch.nn.functional.normalize(point, dim=-1)


@dataclass(frozen=True)
class DriftSummary:
    """How far A anchors have moved from home, in radians.

    Attributes:
        n_anchors: A.
        mean, median, p5, p95, max: of the drift angles.
        near_fraction: share of anchors with |drift − reference| < tolerance.
        reference, tolerance: the window of ``near_fraction`` (default 0.29154 ± 0.05).
        bin_width: width of the histogram bins, which start at 0.
        counts: anchors per bin [k·bin_width, (k+1)·bin_width), up to the bin holding the
            largest drift and at least up to reference + tolerance.
    """

    n_anchors: int
    mean: float
    median: float
    p5: float
    p95: float
    max: float
    near_fraction: float
    reference: float
    tolerance: float
    bin_width: float
    counts: tuple[int, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe dict (``counts`` as a list)."""
        doc = asdict(self)
        doc["counts"] = list(self.counts)
        return doc


def drift_summary(
    angles: torch.Tensor,
    reference: float = BINDING_CONSTANT,
    tolerance: float = BINDING_TOLERANCE,
    bin_width: float = DRIFT_BIN_WIDTH,
) -> DriftSummary:
    """Summarise drift ``angles`` (A,) radians: quantiles, the share within ``tolerance`` of
    ``reference``, and the full histogram in bins of ``bin_width`` starting at 0."""
    if angles.ndim != 1 or angles.numel() == 0:
        raise ValueError(f"expected a non-empty (A,) tensor of angles, got {tuple(angles.shape)}")
    if tolerance <= 0 or bin_width <= 0:
        raise ValueError(f"tolerance and bin_width must be > 0, got {tolerance}, {bin_width}")
    x = angles.detach().double().cpu()
    if not torch.isfinite(x).all() or (x < 0).any():
        raise ValueError("drift angles must be finite and non-negative")
    top = max(float(x.max()), reference + tolerance)
    n_bins = math.floor(top / bin_width) + 1
    counts = torch.bincount((x / bin_width).floor().long().clamp(max=n_bins - 1), minlength=n_bins)
    q = torch.quantile(x, torch.tensor([0.05, 0.5, 0.95], dtype=torch.float64))
    return DriftSummary(
        n_anchors=x.numel(),
        mean=float(x.mean()),
        median=float(q[1]),
        p5=float(q[0]),
        p95=float(q[2]),
        max=float(x.max()),
        near_fraction=float(((x - reference).abs() < tolerance).double().mean()),
        reference=reference,
        tolerance=tolerance,
        bin_width=bin_width,
        counts=tuple(int(c) for c in counts),
    )
