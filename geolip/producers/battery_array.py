"""An array of frozen sphere-solver banks read as one feature: the MSE signature (spec §A.16).

n_batteries batteries, each trained on its own noises and kept at n_phases points of its run
(e.g. "epoch_1", "best", "final"), give n_banks = n_batteries · n_phases SphereSolvers of one
config. Bank ``battery · n_phases + phase`` is upstream's flat order (battery-major), so the
h2-64 array is 64 batteries × 3 phases = 192 H2 banks. How well each bank reconstructs an image
is the array's output: ``signature`` (B, n_batteries, n_phases).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from geolip.codebook import Codebook
from geolip.data.noise import TRAINING_NOISES
from geolip.producers.contract import ProducerModule
from geolip.producers.extract import extract_codebook
from geolip.producers.pretrained import load_weights, parse_config, read_pretrained
from geolip.producers.sphere_solver import SphereSolver, SphereSolverConfig


class BatteryArrayConfig(BaseModel):
    """What an array is made of; frozen, unknown fields refused.

    Attributes:
        model: the config every bank shares.
        batteries, phases: unique names without "/", in flat bank order.
        noises: per battery, the training noises it was trained on (metadata only), or empty
            when not recorded.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: SphereSolverConfig
    batteries: tuple[str, ...] = Field(min_length=1)
    phases: tuple[str, ...] = Field(default=("final",), min_length=1)
    noises: tuple[tuple[str, ...], ...] = ()

    @property
    def n_batteries(self) -> int:
        return len(self.batteries)

    @property
    def n_phases(self) -> int:
        return len(self.phases)

    @property
    def bank_keys(self) -> tuple[str, ...]:
        """ "battery/phase" for every bank, in flat order."""
        return tuple(f"{b}/{p}" for b in self.batteries for p in self.phases)

    @model_validator(mode="after")
    def _consistent(self) -> BatteryArrayConfig:
        for kind, names in (("battery", self.batteries), ("phase", self.phases)):
            if len(set(names)) != len(names) or not all(names) or any("/" in n for n in names):
                raise ValueError(f"{kind} names must be unique, non-empty, without '/': {names}")
        if self.noises and len(self.noises) != self.n_batteries:
            raise ValueError(f"{len(self.noises)} noise lists for {self.n_batteries} batteries")
        unknown = sorted({k for kinds in self.noises for k in kinds} - set(TRAINING_NOISES))
        if unknown:
            raise ValueError(f"unknown training noises {unknown}")
        return self


class BatteryArray(ProducerModule):
    """n_batteries × n_phases SphereSolver banks of one config; state keys ``banks.{i}.{param}``
    with i = battery · n_phases + phase."""

    def __init__(self, config: BatteryArrayConfig) -> None:
        super().__init__()
        self.config = config
        n_banks = config.n_batteries * config.n_phases
        self.banks = nn.ModuleList(SphereSolver(config.model) for _ in range(n_banks))

    def bank(self, battery: int | str, phase: int | str = -1) -> SphereSolver:
        """The solver of ``battery`` at ``phase``, each a name or an index (negative from the
        end). Unknown names raise KeyError, indices out of range IndexError."""
        c = self.config
        b, p = _position(battery, c.batteries, "battery"), _position(phase, c.phases, "phase")
        return self.banks[b * c.n_phases + p]

    @torch.no_grad()
    def signature(self, images: torch.Tensor) -> torch.Tensor:
        """Per-image reconstruction MSE of every bank, no autograd graph: the array's feature.

        Args:
            images: (B, C, H, W) finite floating-point images (see ``SphereSolver.forward``).

        Returns:
            (B, n_batteries, n_phases): entry [i, b, p] is the mean over C, H, W of
            (bank(b, p)(images)["recon"] − images)²[i]. Banks run one after another, so peak
            memory is one bank's forward pass.
        """
        c = self.config
        mse = [(bank(images)["recon"] - images).square().flatten(1).mean(1) for bank in self.banks]
        return torch.stack(mse, dim=1).unflatten(1, (c.n_batteries, c.n_phases))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`signature`: (B, C, H, W) → (B, n_batteries, n_phases)."""
        return self.signature(images)

    def extract_codebooks(
        self,
        calibration: str = "sixteen_noise",
        n: int = 64,
        seed: int = 0,
        *,
        banks: Iterable[int | str] | None = None,
        **extract_kwargs: Any,
    ) -> dict[str, Codebook]:
        """One codebook per bank, each extracted on the same calibration set.

        Args:
            calibration, n, seed: the calibration set, as in :func:`extract_codebook`.
            banks: flat indices or "battery/phase" keys; all banks when None.
            **extract_kwargs: further :func:`extract_codebook` options (not ``name``).

        Returns:
            "battery/phase" → that bank's codebook, named by the same key, in request order.
        """
        keys = self.config.bank_keys
        flat = range(len(keys)) if banks is None else [_position(k, keys, "bank") for k in banks]
        return {
            keys[i]: extract_codebook(
                self.banks[i], calibration, n, seed, name=keys[i], **extract_kwargs
            )
            for i in flat
        }

    @classmethod
    def from_solvers(
        cls,
        solvers: Sequence[SphereSolver],
        names: Sequence[str],
        noises: Sequence[Sequence[str]] | None = None,
        phases: Sequence[str] = ("final",),
    ) -> BatteryArray:
        """An array holding copies of trained solvers (dtype kept), given in flat order: every
        phase of battery 0, then of battery 1, …

        Raises:
            ValueError: the count is not len(names) · len(phases), the configs differ (the
                message names the solver and the fields), or the metadata is invalid.
        """
        if not solvers or len(solvers) != len(names) * len(phases):
            raise ValueError(
                f"expected {len(names)} batteries × {len(phases)} phases = "
                f"{len(names) * len(phases)} solvers, got {len(solvers)}"
            )
        reference = solvers[0].config.model_dump()
        for i, solver in enumerate(solvers):
            fields = solver.config.model_dump()
            diff = [f"{k} {fields[k]!r} ≠ {v!r}" for k, v in reference.items() if fields[k] != v]
            if diff:
                raise ValueError(f"solver {i} config differs from solver 0's: {', '.join(diff)}")
        config = BatteryArrayConfig(
            model=solvers[0].config,
            batteries=tuple(names),
            phases=tuple(phases),
            noises=tuple(tuple(kinds) for kinds in noises or ()),
        )
        array = cls(config)
        for bank, solver in zip(array.banks, solvers, strict=True):
            bank.load_state_dict(
                {k: v.clone() for k, v in solver.state_dict().items()}, assign=True
            )
        return array.eval()

    def pretrained_config(self) -> dict[str, Any]:
        """``config.json`` of a saved array: ``model_class`` and the array config."""
        return {"model_class": type(self).__name__, **self.config.model_dump(mode="json")}

    @classmethod
    def from_folder(cls, folder: str | Path) -> BatteryArray:
        """Read a folder written by :meth:`save_pretrained` (in eval mode, dtype as saved).

        Raises:
            CheckpointNotFoundError: a file is missing. CheckpointError: a file is not JSON or
            safetensors, not a BatteryArray config, or the weights do not fit the config; the
            error names the file.
        """
        doc, state = read_pretrained(folder, cls.__name__)
        array = cls(parse_config(BatteryArrayConfig, doc, folder))
        return load_weights(array, state, folder, keep_dtype=True)


def _position(key: int | str, names: Sequence[str], kind: str) -> int:
    """Index of ``key`` (a name, or an index that may be negative) among ``names``."""
    if isinstance(key, str):
        if key not in names:
            raise KeyError(f"unknown {kind} {key!r}; known: {', '.join(names)}")
        return names.index(key)
    if not -len(names) <= key < len(names):
        raise IndexError(f"{kind} index {key} out of range for {len(names)} {kind}s")
    return key % len(names)
