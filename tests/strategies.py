"""Shared test data: seeded random rows, rotations, separated axes; hypothesis strategies."""

from __future__ import annotations

import math

import torch
from hypothesis import strategies as st

F64 = torch.float64


def random_rows(k: int, d: int, seed: int) -> torch.Tensor:
    """(k, d) float64 Gaussian rows from a fixed seed."""
    return torch.randn(k, d, generator=gen(seed), dtype=F64)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def gaussian(n: int, d: int, g: torch.Generator) -> torch.Tensor:
    return torch.randn(n, d, generator=g, dtype=F64)


def unit_axes(k: int, d: int, g: torch.Generator) -> torch.Tensor:
    return torch.nn.functional.normalize(gaussian(k, d, g), dim=1)


def random_orthogonal(d: int, g: torch.Generator, det: float) -> torch.Tensor:
    """Haar-random orthogonal matrix with the requested determinant (±1)."""
    q, r = torch.linalg.qr(gaussian(d, d, g))
    q = q * torch.sign(torch.diagonal(r))
    if torch.linalg.det(q) * det < 0:
        q[:, 0] = -q[:, 0]
    return q


def random_signs(k: int, g: torch.Generator) -> torch.Tensor:
    return torch.where(torch.rand(k, generator=g, dtype=F64) < 0.5, -1.0, 1.0)


def separated_axes(k: int, d: int, g: torch.Generator, min_deg: float) -> torch.Tensor:
    """k random axes whose pairwise projective angles all exceed ``min_deg``."""
    limit = math.cos(math.radians(min_deg))
    axes: list[torch.Tensor] = []
    while len(axes) < k:
        x = unit_axes(1, d, g)[0]
        if all(abs(float(x @ y)) < limit for y in axes):
            axes.append(x)
    return torch.stack(axes)


def tangent_noise(b: torch.Tensor, sigma: float, g: torch.Generator) -> torch.Tensor:
    """normalize(b + σ t) with t a random unit tangent vector at each row of b."""
    t = gaussian(*b.shape, g)
    t = torch.nn.functional.normalize(t - (t * b).sum(1, keepdim=True) * b, dim=1)
    return torch.nn.functional.normalize(b + sigma * t, dim=1)


def shuffled_copy(
    a: torch.Tensor, rotation: torch.Tensor, g: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Target rows b_j = s_j R a_perm[j]; returns (b, partner, signs) where the true
    partner of source row i is target row partner[i] with R a_i = signs[i] b_partner[i]."""
    k = a.shape[0]
    perm = torch.randperm(k, generator=g)
    s = random_signs(k, g)
    b = (a @ rotation.T)[perm] * s.unsqueeze(1)
    partner = torch.empty(k, dtype=torch.long)
    partner[perm] = torch.arange(k)
    return b, partner, s[partner]


def sign_of_match(estimate: torch.Tensor, truth: torch.Tensor) -> tuple[int, float]:
    """R and −R align axes equally well: the global sign and distance to the nearer one."""
    plus, minus = (estimate - truth).norm().item(), (estimate + truth).norm().item()
    return (1, plus) if plus <= minus else (-1, minus)


seeds = st.integers(min_value=0, max_value=2**31 - 1)
dims = st.integers(min_value=2, max_value=12)
sizes = st.integers(min_value=1, max_value=40)
