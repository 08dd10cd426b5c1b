"""The i.i.d. null model of codebook statistics (spec §B.4, H.19).

Random rows reproduce the codebook statistics upstream reports, so geolip never prints one
without its null distribution. Two kinds of null:

- ``"rows"``: V i.i.d. N(0, I_D) rows → :func:`antipodal_collapse` → statistics, the null of a
  codebook *extracted* from V rows;
- ``"axes"``: K i.i.d. uniform axes, no collapse, the null of a codebook given as K axes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Literal

import numpy as np
import torch

from geolip.solvers.metrics import effective_rank
from geolip.solvers.projective import (
    CLEAN_TOLERANCE,
    EXACT_PAIR_LIMIT,
    SAMPLED_ROWS,
    antipodal_collapse,
    deviation,
)

NullKind = Literal["rows", "axes"]
STATISTICS = ("pairs", "axes", "deviation", "effective_rank")


@dataclass(frozen=True, eq=False)
class NullDistribution:
    """Null distribution of codebook statistics over independent trials.

    Instances are cached and shared, so the arrays are read-only.

    Attributes:
        kind: ``"rows"`` (V rows collapsed) or ``"axes"`` (K axes as given).
        n: V for ``"rows"``, K for ``"axes"``.
        dim: D.
        threshold: antipodal threshold of the collapse; ``None`` for ``"axes"``.
        seed: seed of the generator that drew every trial.
        pairs: (n_trials,) float64 antipodal pairs merged per trial (0 for ``"axes"``).
        axes: (n_trials,) float64 axes per trial (n for ``"axes"``).
        deviation: (n_trials,) float64 mean projective angle minus the exact uniform baseline.
        effective_rank: (n_trials,) float64 effective rank of each trial's axes (of the rows
            the deviation reads, for ``"axes"`` above the exact limit).
    """

    kind: NullKind
    n: int
    dim: int
    threshold: float | None
    seed: int
    pairs: np.ndarray
    axes: np.ndarray
    deviation: np.ndarray
    effective_rank: np.ndarray

    @property
    def n_trials(self) -> int:
        return int(self.deviation.shape[0])

    @property
    def clean_fraction(self) -> float:
        """Share of trials with |deviation| < CLEAN_TOLERANCE (projective-clean)."""
        return float(np.mean(np.abs(self.deviation) < CLEAN_TOLERANCE))

    def summary(self) -> dict:
        """JSON-serialisable summary: mean, sd (unbiased), p5 and p95 of each statistic."""
        out: dict = {
            "kind": self.kind,
            "n": self.n,
            "dim": self.dim,
            "threshold": self.threshold,
            "seed": self.seed,
            "n_trials": self.n_trials,
            "clean_fraction": self.clean_fraction,
        }
        for name in STATISTICS:
            values = getattr(self, name)
            p5, p95 = np.percentile(values, [5, 95])
            out[name] = {
                "mean": float(values.mean()),
                "sd": float(values.std(ddof=1)),
                "p5": float(p5),
                "p95": float(p95),
            }
        return out

    def percentile(self, value: float, statistic: str = "deviation") -> float:
        """Mid-rank percentile of ``value`` in the null, in [0, 100].

        100 · (#{null < value} + ½ #{null = value}) / n_trials: 0 below the null's minimum,
        100 above its maximum, 50 at the median of an odd-sized symmetric sample.
        """
        if statistic not in STATISTICS:
            raise ValueError(f"statistic must be one of {STATISTICS}, got {statistic!r}")
        if math.isnan(value):
            raise ValueError("cannot place NaN in a null distribution")
        values = getattr(self, statistic)
        below = np.count_nonzero(values < value)
        ties = np.count_nonzero(values == value)
        return 100.0 * (below + 0.5 * ties) / self.n_trials


def _trial(
    n: int, dim: int, kind: NullKind, threshold: float | None, gen: torch.Generator
) -> tuple[int, int, float, float]:
    """One draw of the null → (pairs, axes, deviation, effective rank)."""
    if kind == "axes":
        # Above the exact limit the deviation reads a uniform row sample of SAMPLED_ROWS; for
        # i.i.d. rows, drawing only that many is the same distribution at a fraction of the cost.
        exact = n * (n - 1) // 2 <= EXACT_PAIR_LIMIT
        rows = torch.randn(
            n if exact else min(n, SAMPLED_ROWS), dim, generator=gen, dtype=torch.float64
        )
        return 0, n, deviation(rows), _effective_rank(rows)
    rows = torch.randn(n, dim, generator=gen, dtype=torch.float64)
    collapse = antipodal_collapse(rows, threshold)
    axes = collapse.axes
    return collapse.n_pairs, collapse.n_axes, deviation(axes), _effective_rank(axes)


def _effective_rank(rows: torch.Tensor) -> float:
    """Effective rank of the unit-normalised rows (what a codebook of them would report)."""
    return float(effective_rank(torch.linalg.svdvals(rows / rows.norm(dim=-1, keepdim=True))))


@contextmanager
def _one_intra_op_thread() -> Iterator[None]:
    """Run torch's CPU ops on one intra-op thread inside the block, then restore the setting.

    A trial is hundreds of tiny ops, and torch parallelises some of them anyway (the row-wise
    min of a 32×32 cosine matrix in the collapse). When another process holds a core, each such
    op waits for a time slice: 300 trials at V=32, D=4 went from 0.1 s to 4 s on a 2-core machine
    with one busy core, and stay at 0.1 s on one thread.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@cache
def _null_codebook_stats(
    n: int, dim: int, n_trials: int, kind: NullKind, threshold: float | None, seed: int
) -> NullDistribution:
    gen = torch.Generator().manual_seed(seed)
    with _one_intra_op_thread():
        trials = [_trial(n, dim, kind, threshold, gen) for _ in range(n_trials)]
    columns = np.array(trials, dtype=np.float64).T
    pairs, axes, dev, erank = (np.ascontiguousarray(column) for column in columns)
    for array in (pairs, axes, dev, erank):
        array.setflags(write=False)
    return NullDistribution(kind, n, dim, threshold, seed, pairs, axes, dev, erank)


def null_codebook_stats(
    n: int,
    dim: int,
    n_trials: int = 300,
    kind: NullKind = "rows",
    threshold: float = -0.9,
    seed: int = 0,
) -> NullDistribution:
    """Null distribution of pairs, axes and deviation for a codebook of ``n`` rows or axes in R^dim.

    Every trial is drawn from one ``torch.Generator`` seeded with ``seed``, so the result is
    deterministic; it is cached, and the same arguments return the same object.

    Args:
        n: V rows for ``kind="rows"`` (≥ 3, so at least 2 axes survive), K axes for
            ``kind="axes"`` (≥ 2).
        dim: D ≥ 2.
        n_trials: number of independent trials (≥ 2).
        kind: ``"rows"`` (collapse V Gaussian rows) or ``"axes"`` (K uniform axes as given).
        threshold: antipodal cosine threshold of the collapse; ignored for ``"axes"``.
        seed: generator seed.
    """
    if kind not in ("rows", "axes"):
        raise ValueError(f"kind must be 'rows' or 'axes', got {kind!r}")
    min_n = 3 if kind == "rows" else 2
    if n < min_n:
        raise ValueError(f"a {kind!r} null needs n >= {min_n}, got {n}")
    if dim < 2:
        raise ValueError(f"a projective null needs dim >= 2, got {dim}")
    if n_trials < 2:
        raise ValueError(f"n_trials must be >= 2, got {n_trials}")
    key_threshold = float(threshold) if kind == "rows" else None
    return _null_codebook_stats(int(n), int(dim), int(n_trials), kind, key_threshold, int(seed))


def null_percentile(observed_deviation: float, null: NullDistribution) -> float:
    """Mid-rank percentile of an observed deviation in ``null``, as NullDistribution.percentile."""
    return null.percentile(observed_deviation)


ROW_SPECTRUM_MAX_MATRICES = 512
"""Matrices per trial of :func:`row_spectrum_null` at most (the cost bound of one trial)."""


@dataclass(frozen=True)
class RowSpectrumNull:
    """Effective rank and S0/SD of V i.i.d. unit rows in R^D, estimated as a training run does.

    One trial is ``n_matrices`` independent (V, D) matrices of N(0, I) rows projected onto the
    sphere; its statistics are the mean per-matrix effective rank and the ratio of the mean
    largest to the mean smallest singular value, the estimators of ``Trainer.evaluate``.

    Attributes:
        v, dim, n_matrices, n_trials, seed: the configuration.
        effective_rank: (n_trials,) float64 per-trial estimates.
        s0_over_sd: (n_trials,) float64 per-trial estimates.
    """

    v: int
    dim: int
    n_matrices: int
    n_trials: int
    seed: int
    effective_rank: np.ndarray
    s0_over_sd: np.ndarray

    def summary(self) -> dict[str, float]:
        """Flat metrics: ``effective_rank_null_mean``/``_sd``, ``s0_over_sd_null_mean``/``_sd``
        and ``null_matrices`` (matrices per trial)."""
        return {
            "effective_rank_null_mean": float(self.effective_rank.mean()),
            "effective_rank_null_sd": float(self.effective_rank.std(ddof=1)),
            "s0_over_sd_null_mean": float(self.s0_over_sd.mean()),
            "s0_over_sd_null_sd": float(self.s0_over_sd.std(ddof=1)),
            "null_matrices": self.n_matrices,
        }


@cache
def row_spectrum_null(
    v: int, dim: int, n_matrices: int = 64, n_trials: int = 32, seed: int = 0
) -> RowSpectrumNull:
    """Null distribution of the training spectral metrics for V i.i.d. unit rows in R^dim.

    ``n_matrices`` is capped at :data:`ROW_SPECTRUM_MAX_MATRICES` (a larger validation set only
    narrows the null further, so the capped sd is conservative). Deterministic under ``seed``
    (its own generator; the global RNG is untouched) and cached.
    """
    from geolip.solvers.metrics import effective_rank

    if v < 1 or dim < 2 or n_matrices < 1 or n_trials < 2:
        raise ValueError(
            f"need v >= 1, dim >= 2, n_matrices >= 1, n_trials >= 2; got {v=}, {dim=}, "
            f"{n_matrices=}, {n_trials=}"
        )
    m = min(int(n_matrices), ROW_SPECTRUM_MAX_MATRICES)
    gen = torch.Generator().manual_seed(seed)
    rows = torch.randn(n_trials, m, v, dim, generator=gen, dtype=torch.float64)
    rows = rows / rows.norm(dim=-1, keepdim=True)
    # singular values from the D×D Gram matrix: a batched eigvalsh is far cheaper than svdvals
    gram = rows.transpose(-1, -2) @ rows
    s = torch.linalg.eigvalsh(gram).clamp(min=0).sqrt().flip(-1)[..., : min(v, dim)]
    erank = effective_rank(s).mean(dim=1).numpy()
    mean_s = s.mean(dim=1)
    ratio = (mean_s[:, 0] / mean_s[:, -1]).numpy()
    for array in (erank, ratio):
        array.setflags(write=False)
    return RowSpectrumNull(int(v), int(dim), m, int(n_trials), int(seed), erank, ratio)
