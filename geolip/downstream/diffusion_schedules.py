"""Masking schedules of absorbing-state (MaskGIT) diffusion: the fraction γ(r) of tokens that
are masked at progress r ∈ [0, 1].

γ(0) = 1 (everything masked, the start of sampling) and γ(1) = 0 (nothing masked), and γ
decreases monotonically in between (Chang et al. 2022, MaskGIT, section 3.3):

    cosine   γ(r) = cos(π r / 2)          MaskGIT's default: few tokens fixed early on
    linear   γ(r) = 1 − r
    arccos   γ(r) = (2 / π) arccos(r)      many tokens fixed early on

Training draws r ~ U(0, 1) and masks ⌈γ(r)·N⌉ of N tokens (at least one); sampling with T steps
leaves ⌊γ((t + 1) / T)·N⌋ tokens masked after step t.
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import torch

Schedule = Literal["cosine", "linear", "arccos"]
SCHEDULES: tuple[str, ...] = get_args(Schedule)


def mask_ratio(schedule: Schedule, r: torch.Tensor | float) -> torch.Tensor:
    """γ(r) of ``schedule`` (module docstring), elementwise.

    Args:
        schedule: ``"cosine"``, ``"linear"`` or ``"arccos"``.
        r: progress in [0, 1], any shape (values outside are clamped).

    Returns:
        float tensor of r's shape, values in [0, 1]; γ(0) = 1, γ(1) = 0, non-increasing.

    Raises:
        ValueError: an unknown schedule.
    """
    x = torch.as_tensor(r, dtype=torch.float64).clamp(0.0, 1.0)
    if schedule == "cosine":
        out = torch.cos(x * (math.pi / 2))
    elif schedule == "linear":
        out = 1.0 - x
    elif schedule == "arccos":
        out = torch.arccos(x) * (2 / math.pi)
    else:
        raise ValueError(f"unknown masking schedule {schedule!r}; expected one of {SCHEDULES}")
    # cos(π/2) is 6e-17 in floating point, not 0: pin the endpoints exactly
    out = torch.where(x >= 1.0, torch.zeros_like(out), out)
    return torch.where(x <= 0.0, torch.ones_like(out), out).clamp(0.0, 1.0)
