"""The angle-histogram picture and the exact density it draws."""

from __future__ import annotations

import math

import pytest
import torch

from geolip import Codebook
from geolip.codebook.plot import plot_angle_histogram, uniform_angle_density
from geolip.solvers.projective import uniform_rp_baseline


@pytest.mark.parametrize("dim", [3, 4, 8, 16])
def test_uniform_angle_density_integrates_to_one_with_the_exact_mean(dim: int) -> None:
    theta = torch.linspace(0, math.pi / 2, 20001, dtype=torch.float64)
    f = uniform_angle_density(theta, dim)
    assert torch.trapezoid(f, theta).item() == pytest.approx(1.0, abs=1e-6)
    assert torch.trapezoid(theta * f, theta).item() == pytest.approx(
        uniform_rp_baseline(dim), abs=1e-6
    )


def test_plot_writes_a_png_atomically(tmp_path) -> None:
    target = tmp_path / "fig" / "angles.png"
    path = plot_angle_histogram(Codebook.random(20, 4, seed=2), target, null_trials=10)
    assert path == target and target.read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in target.parent.iterdir()] == ["angles.png"]
