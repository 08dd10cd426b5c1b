"""A tiny seeded sphere-solver and its codebook for downstream tests (untrained, fast)."""

from __future__ import annotations

import torch

from geolip.codebook import Codebook
from geolip.producers.extract import extract_codebook
from geolip.producers.sphere_solver import SphereSolver, SphereSolverConfig

TINY = SphereSolverConfig(
    V=8, D=4, patch_size=4, hidden=16, depth=0, n_cross=0, smooth_mid=4, readout="linear"
)


def tiny_producer(seed: int = 0, **overrides: object) -> SphereSolver:
    """The TINY config (fields overridden), initialised under ``seed``, in eval mode."""
    config = SphereSolverConfig(**{**TINY.model_dump(), **overrides})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SphereSolver(config, preset=None).eval()


def tiny_codebook(producer: SphereSolver, seed: int = 0) -> Codebook:
    """Its gaussian-calibration codebook (32 images of 16 × 16, no controls)."""
    return extract_codebook(
        producer, "gaussian", n=32, seed=seed, size=16, null_trials=10, controls=False
    )
