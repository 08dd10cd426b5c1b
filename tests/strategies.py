"""Hypothesis strategies and small generators shared by the tests."""

from __future__ import annotations

import torch
from hypothesis import strategies as st


def random_rows(k: int, d: int, seed: int) -> torch.Tensor:
    """(k, d) float64 Gaussian rows from a fixed seed."""
    return torch.randn(k, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def random_rotation(d: int, seed: int, proper: bool = True) -> torch.Tensor:
    """(d, d) float64 Haar-random orthogonal matrix (det +1 when ``proper``)."""
    q, r = torch.linalg.qr(random_rows(d, d, seed))
    q = q * torch.sign(torch.diagonal(r))
    if proper and torch.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def separated_axes(k: int, d: int, seed: int, min_deg: float = 10.0) -> torch.Tensor:
    """(k, d) unit axes whose pairwise projective angles all exceed ``min_deg`` (rejection)."""
    gen = torch.Generator().manual_seed(seed)
    cos_max = torch.cos(torch.deg2rad(torch.tensor(min_deg, dtype=torch.float64)))
    kept: list[torch.Tensor] = []
    while len(kept) < k:
        v = torch.randn(d, generator=gen, dtype=torch.float64)
        v = v / v.norm()
        if all(abs(float(v @ u)) < cos_max for u in kept):
            kept.append(v)
    return torch.stack(kept)


seeds = st.integers(min_value=0, max_value=2**31 - 1)
dims = st.integers(min_value=2, max_value=12)
sizes = st.integers(min_value=1, max_value=40)
