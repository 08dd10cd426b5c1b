"""The multi-expert Procrustes soup (seed 004, spec §C.6): several experts → one consensus.

Fitted on the training rows of m experts that saw the same N items, (N, F_k) each:

    1. each expert: centre, PCA to ``gpa_dim``                        (N, g) per expert
    2. generalised Procrustes (Gower; centred, unit Frobenius scale)   rotations R_k
    3. PCA of the GPA consensus to ``dim``                             basis Q (g, dim)
    4. per expert: whitened Procrustes onto the consensus in Q         W_k (whiten, rotate,
                                                                       recolour)
    5. consensus on the sphere: e = unit(mean_k unit(W_k(u_k)))

:func:`soup_embeddings` gives every expert's rows and the consensus at four stages, so the
calibration can be judged by what it adds:

- ``raw``: no centring and no alignment; each expert projected onto the top ``dim`` right
  singular vectors of its uncentred training features (the mean direction kept);
- ``centred``: each expert's own centred PCA to ``dim``, frames unrelated (the unaligned null);
- ``gpa``: steps 1–3, no whitened calibration;
- ``calibrated``: steps 1–5.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from geolip.downstream.crossmodal import pca_basis
from geolip.errors import IncompatibleInputError
from geolip.solvers.procrustes import GPAResult, WhitenedProcrustes, generalized_procrustes
from geolip.solvers.procrustes import whitened_procrustes as fit_whitened

Stage = Literal["raw", "centred", "gpa", "calibrated"]
STAGES: tuple[Stage, ...] = ("raw", "centred", "gpa", "calibrated")
GPA_TOL = 1e-6
"""GPA stops once the unit-norm consensus moves less than this (Frobenius) in one iteration.
It converges linearly: three experts of docs/crossmodal.md need about 100 iterations, five
300 to 770."""
GPA_MAX_ITER = 2000


@dataclass(frozen=True)
class SoupFit:
    """A fitted soup (module docstring); all tensors float64.

    Attributes:
        means, bases: per expert, (F_k,) and (F_k, g) of step 1.
        gpa: the :class:`GPAResult` of step 2 (rotations (m, g, g), scales, translations).
        consensus_basis: (g, dim) Q of step 3.
        calibrations: per expert, the :class:`WhitenedProcrustes` of step 4.
        raw_bases: per expert, (F_k, dim) uncentred projection of the ``raw`` stage (the
            ``centred`` stage uses the first ``dim`` columns of ``bases``).
    """

    means: list[torch.Tensor]
    bases: list[torch.Tensor]
    gpa: GPAResult
    consensus_basis: torch.Tensor
    calibrations: list[WhitenedProcrustes]
    raw_bases: list[torch.Tensor]

    @property
    def n_experts(self) -> int:
        return len(self.bases)

    @property
    def dim(self) -> int:
        return int(self.consensus_basis.shape[1])


def check_experts(features: Sequence[torch.Tensor], gpa_dim: int, dim: int) -> None:
    """Refuse, before any work, experts the soup cannot combine."""
    if len(features) < 2:
        raise IncompatibleInputError(f"a soup needs at least 2 experts, got {len(features)}")
    counts = {int(f.shape[0]) for f in features if isinstance(f, torch.Tensor) and f.ndim == 2}
    if len(counts) != 1 or any(not isinstance(f, torch.Tensor) or f.ndim != 2 for f in features):
        shapes = [tuple(f.shape) if isinstance(f, torch.Tensor) else "?" for f in features]
        raise IncompatibleInputError(
            f"experts must be (N, F_k) with one N (the same items), got shapes {shapes} "
            "(mismatched pair counts)"
        )
    n = counts.pop()
    widths = [int(f.shape[1]) for f in features]
    if not 1 <= dim <= gpa_dim <= min(n - 1, *widths):
        raise IncompatibleInputError(
            f"need 1 <= dim ({dim}) <= gpa_dim ({gpa_dim}) <= min(N - 1, F_k) = "
            f"{min(n - 1, *widths)} for N = {n} and expert widths {widths} (dimension mismatch)"
        )
    for k, f in enumerate(features):
        if not torch.isfinite(f).all():
            raise IncompatibleInputError(f"expert {k} features contain NaN or Inf")


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=1, keepdim=True).clamp(min=1e-300)


def fit_soup(features: Sequence[torch.Tensor], *, gpa_dim: int = 48, dim: int = 32) -> SoupFit:
    """Fit steps 1–4 on m experts' training features (module docstring)."""
    check_experts(features, gpa_dim, dim)
    xs = [f.to(torch.float64) for f in features]
    means, bases, reduced, raw_bases = [], [], [], []
    for x in xs:
        mean, basis = pca_basis(x, gpa_dim)
        means.append(mean)
        bases.append(basis)
        reduced.append((x - mean) @ basis)
        _, _, vh = torch.linalg.svd(x, full_matrices=False)
        raw_bases.append(vh[:dim].T)
    gpa = generalized_procrustes(
        reduced, center=True, scale=True, tol=GPA_TOL, max_iter=GPA_MAX_ITER
    )
    aligned = _aligned(gpa, reduced)
    _, q = pca_basis(gpa.consensus, dim)
    target = (gpa.consensus - gpa.consensus.mean(dim=0)) @ q
    calibrations = [fit_whitened(a @ q, target) for a in aligned]
    return SoupFit(means, bases, gpa, q, calibrations, raw_bases)


def _aligned(gpa: GPAResult, reduced: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Each expert's reduced rows in the consensus frame: s_k (x − t_k) R_kᵀ."""
    return [
        gpa.scales[k] * (x - gpa.translations[k]) @ gpa.rotations[k].T
        for k, x in enumerate(reduced)
    ]


def soup_embeddings(
    fit: SoupFit, features: Sequence[torch.Tensor], stage: Stage = "calibrated"
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """(per-expert unit rows (N, dim), consensus unit rows (N, dim)) at ``stage``.

    ``features`` are the experts' rows for any N items (training or held out), in the order
    of the fit.
    """
    if len(features) != fit.n_experts:
        raise IncompatibleInputError(f"the soup has {fit.n_experts} experts, got {len(features)}")
    for k, (f, basis) in enumerate(zip(features, fit.bases, strict=True)):
        if f.ndim != 2 or f.shape[1] != basis.shape[0]:
            raise IncompatibleInputError(
                f"expert {k} features {tuple(f.shape)} do not fit: it was fitted on width "
                f"{basis.shape[0]}"
            )
    xs = [f.to(torch.float64) for f in features]
    if stage == "raw":
        rows = [x @ b for x, b in zip(xs, fit.raw_bases, strict=True)]
    elif stage == "centred":
        rows = [(x - m) @ b[:, : fit.dim] for x, m, b in zip(xs, fit.means, fit.bases, strict=True)]
    elif stage in ("gpa", "calibrated"):
        reduced = [(x - m) @ b for x, m, b in zip(xs, fit.means, fit.bases, strict=True)]
        rows = [a @ fit.consensus_basis for a in _aligned(fit.gpa, reduced)]
        if stage == "calibrated":
            rows = [w.apply(r) for w, r in zip(fit.calibrations, rows, strict=True)]
    else:
        raise ValueError(f"unknown stage {stage!r}; expected one of {STAGES}")
    units = [_unit(r) for r in rows]
    return units, _unit(torch.stack(units).mean(dim=0))
