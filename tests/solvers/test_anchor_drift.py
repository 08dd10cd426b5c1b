"""Geodesic angle, SLERP and the drift summary of anchors that moved on the sphere."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from geolip.solvers.anchor_drift import (
    BINDING_CONSTANT,
    drift_summary,
    geodesic_angle,
    slerp,
)


def _at_angle(theta: torch.Tensor, d: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit rows a = e0 and b at exactly ``theta`` from it in the (e0, e1) plane."""
    a = torch.zeros(theta.numel(), d, dtype=torch.float64)
    a[:, 0] = 1
    b = torch.zeros_like(a)
    b[:, 0], b[:, 1] = torch.cos(theta), torch.sin(theta)
    return a, b


def test_geodesic_angle_is_exact_from_tiny_to_antipodal_angles() -> None:
    theta = torch.tensor(
        [0.0, 1e-9, 1e-5, 0.29154, 1.0, math.pi - 1e-6, math.pi], dtype=torch.float64
    )
    a, b = _at_angle(theta)
    torch.testing.assert_close(geodesic_angle(a, b), theta, rtol=1e-9, atol=1e-15)
    torch.testing.assert_close(geodesic_angle(3 * a, 0.5 * b), theta, rtol=1e-9, atol=1e-15)


@given(t=st.floats(0, 1), theta=st.floats(1e-3, 3.0), seed=st.integers(0, 1000))
def test_slerp_moves_a_fraction_t_of_the_way_along_the_great_circle(
    t: float, theta: float, seed: int
) -> None:
    g = torch.Generator().manual_seed(seed)
    q = torch.linalg.qr(torch.randn(4, 4, generator=g, dtype=torch.float64)).Q
    a, b = (row @ q for row in _at_angle(torch.tensor([theta], dtype=torch.float64), d=4))
    p = slerp(a, b, t)
    torch.testing.assert_close(p.norm(dim=-1), torch.ones(1, dtype=torch.float64))
    torch.testing.assert_close(
        geodesic_angle(a, p), torch.tensor([t * theta]).double(), atol=1e-6, rtol=0
    )
    torch.testing.assert_close(
        geodesic_angle(p, b), torch.tensor([(1 - t) * theta]).double(), atol=1e-6, rtol=0
    )


def test_slerp_of_an_anchor_at_home_is_home_with_a_finite_gradient() -> None:
    home = torch.nn.functional.normalize(torch.randn(3, 16), dim=-1)
    now = home.clone().requires_grad_(True)
    p = slerp(home, now, 1 / 3)
    torch.testing.assert_close(p, home)
    p.sum().backward()
    assert now.grad is not None and torch.isfinite(now.grad).all() and now.grad.abs().sum() > 0


def test_drift_summary_counts_the_window_and_keeps_the_whole_histogram() -> None:
    angles = torch.tensor([0.0, 0.005, 0.25, 0.2416, 0.29154, 0.3415, 0.35, 1.234])
    s = drift_summary(angles)
    # |a − 0.29154| < 0.05 for 0.2416, 0.25, 0.29154 and 0.3415 (0.04996 away); not 0.35
    inside = ((angles.double() - BINDING_CONSTANT).abs() < 0.05).sum().item()
    assert inside == 4 and s.near_fraction == inside / 8
    assert s.n_anchors == 8 and s.max == pytest.approx(1.234) and s.bin_width == 0.01
    assert len(s.counts) == 124 and sum(s.counts) == 8
    assert s.counts[0] == 2 and s.counts[123] == 1 and s.counts[29] == 1
    assert s.as_dict()["counts"] == list(s.counts)
    small = drift_summary(torch.tensor([0.001, 0.002]))
    assert len(small.counts) == 35 and small.near_fraction == 0  # reaches past 0.29154 + 0.05
    with pytest.raises(ValueError, match="non-negative"):
        drift_summary(torch.tensor([-0.1]))
    with pytest.raises(ValueError, match="non-empty"):
        drift_summary(torch.zeros(0))
