"""A learned constellation with home positions: the geometric lookup of GLFM (spec §C.5, §D).

    anchors  (A, D) learned, read through their directions â = anchors / ‖anchors‖
    home     (A, D) frozen copy of the initial positions (a buffer: saved, never trained)
    phase φ  p_φ = slerp(home, â, φ), a point on each anchor's path from home
    lookup   tri(e) = 1 − ⟨e, p_φ⟩ for every phase and anchor: (..., n_phases · A)

Anchors start as upstream's repulsion constellation (:func:`repulsion_anchors`), its seed drawn
from the global RNG so that a model built under ``torch.manual_seed`` is reproducible. The
parameter itself is free (Adam moves it off the sphere); every use reads its direction, and
the drift is the angle between home and that direction, as upstream measures it.

Upstream's phases are {0, 1/3, 2/3}: the phase-0 point is home itself, a constant, and the
current anchor (φ = 1) is never looked up [odd, kept]; the phases are a config field.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from geolip.solvers.anchor_drift import geodesic_angle, slerp
from geolip.solvers.constellation import repulsion_anchors


class AnchorConstellation(nn.Module):
    """A anchors on S^(D−1) with their homes; :meth:`triangulate` is the lookup."""

    def __init__(self, n_anchors: int, dim: int, phases: Sequence[float]) -> None:
        super().__init__()
        seed = int(torch.randint(0, 2**31 - 1, ()).item())
        start = repulsion_anchors(n_anchors, dim, seed=seed).float()
        self.phases = tuple(float(p) for p in phases)
        self.anchors = nn.Parameter(start.clone())
        self.home: torch.Tensor
        self.register_buffer("home", start.clone())

    @property
    def n_features(self) -> int:
        """Width of :meth:`triangulate`'s output: n_phases · A."""
        return len(self.phases) * self.anchors.shape[0]

    def positions(self) -> torch.Tensor:
        """(A, D) unit directions of the anchors now."""
        return nn.functional.normalize(self.anchors, dim=-1)

    def phase_points(self) -> torch.Tensor:
        """(n_phases, A, D) unit points p_φ on each anchor's great circle from home."""
        home, now = nn.functional.normalize(self.home, dim=-1), self.positions()
        return torch.stack([slerp(home, now, phase) for phase in self.phases])

    def triangulate(self, e: torch.Tensor) -> torch.Tensor:
        """(..., D) unit points → (..., n_phases · A) distances 1 − cos, phase-major."""
        cos = torch.einsum("...d,pad->...pa", e, self.phase_points())
        return (1 - cos).flatten(-2)

    @torch.no_grad()
    def drift(self) -> torch.Tensor:
        """(A,) float64 angle in radians between each anchor's home and its direction now."""
        return geodesic_angle(self.home.double(), self.anchors.double())
