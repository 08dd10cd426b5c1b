"""Test producers: a tiny seeded sphere-solver and its codebook (untrained, fast), and
``PatchProjector``, a producer family registered through the preset table and the loader."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, PositiveInt

from geolip.codebook import Codebook
from geolip.producers.contract import Geometry, ProducerModule
from geolip.producers.extract import extract_codebook
from geolip.producers.loading import register_model_class
from geolip.producers.presets import Preset, register_preset
from geolip.producers.pretrained import load_weights, parse_config, read_pretrained
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


class PatchProjectorConfig(BaseModel):
    """A producer a test can build in a line: each ps × ps patch → V unit rows in R^D."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    V: PositiveInt = 6
    D: PositiveInt = 3
    patch_size: PositiveInt = 4
    channels: PositiveInt = 1


class PatchProjector(ProducerModule):
    """A new producer family added the documented way: this module, one row in the preset
    table, one entry in the loader; nothing in geolip knows its name."""

    def __init__(self, config: PatchProjectorConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.project = torch.nn.Linear(c.channels * c.patch_size**2, c.V * c.D)

    @property
    def geometry(self) -> Geometry:
        c = self.config
        return Geometry(D=c.D, rows_per_token=c.V, channels=c.channels, patch_size=c.patch_size)

    def encode_rows(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) → (B, P, V, D) unit rows, P raster patches (H, W multiples of ps)."""
        c = self.config
        patches = torch.nn.functional.unfold(x, c.patch_size, stride=c.patch_size)  # (B, ·, P)
        rows = self.project(patches.transpose(1, 2)).unflatten(-1, (c.V, c.D))
        return torch.nn.functional.normalize(rows, dim=-1)

    def pretrained_config(self) -> dict[str, Any]:
        return {"model_class": type(self).__name__, **self.config.model_dump(mode="json")}

    @classmethod
    def from_folder(cls, folder: str | Path) -> PatchProjector:
        doc, state = read_pretrained(folder, cls.__name__)
        return load_weights(cls(parse_config(PatchProjectorConfig, doc, folder)), state, folder)


register_preset(
    Preset(
        "tiny-projector",
        PatchProjector,
        PatchProjectorConfig(),
        {"batch_size": 4, "lr": 1e-3, "epochs": 1, "steps_per_epoch": 1},
        "tests only",
    )
)
register_model_class(PatchProjector)
