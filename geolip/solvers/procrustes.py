"""Orthogonal Procrustes with known correspondence: plain, whitened and generalised (GPA).

Convention everywhere: a rotation ``R`` (D, D) float64 acts on row vectors as ``x @ R.T``
(x ↦ R x). Results are computed in float64. Pure tensor math: torch only. Alignment with
unknown correspondence lives in :mod:`geolip.solvers.alignment`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

RANK_RTOL = 1e-10
"""Singular values of H above ``RANK_RTOL · σ_max`` count towards the numerical rank."""


# --------------------------------------------------------------------------------------------
# Validation


def _matrix(x: torch.Tensor, name: str, min_rows: int = 1) -> torch.Tensor:
    """Check that ``x`` is a finite (N, D) tensor with N ≥ ``min_rows``; return it in float64."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (N, D), got shape {tuple(x.shape)}")
    if x.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} row(s), got {x.shape[0]}")
    if x.shape[1] < 1:
        raise ValueError(f"{name} needs at least one column, got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or Inf")
    return x.detach().to(torch.float64)


def same_dim(a: torch.Tensor, b: torch.Tensor, names: str) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"{names} must share D, got {a.shape[1]} and {b.shape[1]}")


def _paired(
    source: torch.Tensor, target: torch.Tensor, min_rows: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate row-corresponded (N, D) inputs of equal shape; return both in float64."""
    s = _matrix(source, "source", min_rows)
    t = _matrix(target, "target", min_rows)
    if s.shape != t.shape:
        raise ValueError(
            f"source and target must have the same shape, got {tuple(s.shape)} and {tuple(t.shape)}"
        )
    return s, t


def unit_axes(x: torch.Tensor, name: str) -> torch.Tensor:
    """Validate (K, D) axes and normalise their rows (float64); zero rows are refused."""
    x = _matrix(x, name)
    norms = x.norm(dim=1, keepdim=True)
    if (norms == 0).any():
        raise ValueError(f"{name} contains a zero row, which is not an axis")
    return x / norms


# --------------------------------------------------------------------------------------------
# Corresponded Procrustes


def orthogonal_procrustes(
    source: torch.Tensor,
    target: torch.Tensor,
    weights: torch.Tensor | None = None,
    proper: bool = False,
) -> torch.Tensor:
    """Rotation minimising Σ w_i ‖R s_i − t_i‖² over O(D), or over SO(D) when ``proper``.

    With H = Sᵀ diag(w) T = U Σ Wᵀ the solution is R = W Uᵀ. When H has numerical rank
    r < D (singular values ≤ 1e-10·σ_max dropped; e.g. N < D), R is only determined on the
    first r singular directions; on the complements U_c, W_c it is completed by the orthogonal
    O maximising tr(W_c O U_cᵀ), i.e. the completion closest to the identity, so identical
    inputs give exactly I even for N < D. With ``proper`` and det < 0 the sign flip happens
    inside the complement (free of cost) when it is non-empty, else on the smallest singular
    direction (Kabsch).

    Args:
        source: (N, D) rows s_i.
        target: (N, D) rows t_i, corresponded with ``source``.
        weights: optional (N,) non-negative weights w_i (default all ones).
        proper: restrict to rotations with det +1.

    Returns:
        (D, D) float64 orthogonal R; apply it to rows as ``x @ R.T``.
    """
    s, t = _paired(source, target)
    if weights is not None:
        w = weights.detach().to(torch.float64)
        if w.shape != (s.shape[0],):
            raise ValueError(f"weights must have shape ({s.shape[0]},), got {tuple(w.shape)}")
        if not torch.isfinite(w).all() or (w < 0).any():
            raise ValueError("weights must be finite and non-negative")
        t = w.unsqueeze(1) * t
    u, sigma, wh = torch.linalg.svd(s.T @ t)
    rank = int((sigma > RANK_RTOL * sigma[0]).sum()) if sigma[0] > 0 else 0
    return _complete_rotation(u, wh.T, rank, proper)


def _complete_rotation(u: torch.Tensor, w: torch.Tensor, rank: int, proper: bool) -> torch.Tensor:
    """R = W_r U_rᵀ + W_c O U_cᵀ with O the closest-to-identity completion (see caller)."""
    d = u.shape[0]
    # det R = det W · det O · det U (det U_full = ±1), so this sign decides the flip.
    det_wu = torch.linalg.det(w) * torch.linalg.det(u)
    if rank == d:
        flip = torch.ones(d, dtype=torch.float64)
        if proper and det_wu < 0:
            flip[-1] = -1.0
        return (w * flip) @ u.T
    u_c, w_c = u[:, rank:], w[:, rank:]
    # max tr(W_c O U_cᵀ) = max tr(O · U_cᵀ W_c); with U_cᵀ W_c = P Λ Qᵀ the maximiser is Q Pᵀ.
    p, _, qh = torch.linalg.svd(u_c.T @ w_c)
    q = qh.T
    flip = torch.ones(d - rank, dtype=torch.float64)
    if proper and det_wu * torch.linalg.det(p) * torch.linalg.det(q) < 0:
        flip[-1] = -1.0
    o = (q * flip) @ p.T
    return w[:, :rank] @ u[:, :rank].T + w_c @ o @ u_c.T


def legacy_procrustes_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Upstream's index-matched Procrustes distance, kept only for comparability.

    In fp64, with n = min(rows): a, b ← first n rows; aᵀb = U Σ Wᵀ; R = U Wᵀ;
    returns ‖a − b Rᵀ‖_F / √n. Rows are compared by index, and there is no sign handling:
    a sign-flipped copy of a codebook is *not* at distance 0, and reflections are allowed.
    That is upstream's definition; :func:`align_projective` is the sign-, order- and
    size-aware replacement.
    """
    a = _matrix(a, "a")
    b = _matrix(b, "b")
    same_dim(a, b, "a and b")
    n = min(a.shape[0], b.shape[0])
    a, b = a[:n], b[:n]
    u, _, wh = torch.linalg.svd(a.T @ b)
    rotation = u @ wh
    return (torch.linalg.matrix_norm(a - b @ rotation.T) / math.sqrt(n)).item()


# --------------------------------------------------------------------------------------------
# Projective alignment


@dataclass(frozen=True)
class WhitenedProcrustes:
    """Affine map source → target: whiten, rotate, recolour. All tensors float64.

    Attributes:
        source_mean: (D,) μ_s.
        target_mean: (D,) μ_t.
        source_whitener: (D, D) symmetric Σ_s^(-1/2).
        target_colorer: (D, D) symmetric Σ_t^(1/2).
        rotation: (D, D) R between the whitened clouds (rows: z ↦ z Rᵀ).
    """

    source_mean: torch.Tensor
    target_mean: torch.Tensor
    source_whitener: torch.Tensor
    target_colorer: torch.Tensor
    rotation: torch.Tensor

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Map (N, D) source-space rows to target space, exactly (no row normalisation):
        ((x − μ_s) Σ_s^(-1/2)) Rᵀ Σ_t^(1/2) + μ_t, float64.
        """
        x = _matrix(x, "x")
        same_dim(x, self.source_whitener, "x and the fitted map")
        whitened = (x - self.source_mean) @ self.source_whitener
        return whitened @ self.rotation.T @ self.target_colorer + self.target_mean


def _covariance_power(x: torch.Tensor, power: float, floor: float) -> torch.Tensor:
    """Σ^power of the (N, D) rows' covariance (1/(N−1)), eigenvalues clamped at floor·λ_max."""
    centred = x - x.mean(dim=0)
    cov = centred.T @ centred / (x.shape[0] - 1)
    eigenvalues, vectors = torch.linalg.eigh(cov)
    clamped = eigenvalues.clamp(min=floor * eigenvalues.max().clamp(min=0.0))
    if power < 0 and not (clamped > 0).all():
        raise ValueError("cannot whiten: the covariance is zero")
    return (vectors * clamped.pow(power)) @ vectors.T


def whitened_procrustes(
    source: torch.Tensor, target: torch.Tensor, eps: float = 1e-8, proper: bool = False
) -> WhitenedProcrustes:
    """Fit :class:`WhitenedProcrustes` between row-corresponded (N, D) clouds, N ≥ 2.

    Both clouds are centred and whitened (covariance with 1/(N−1); Σ^(-1/2) via eigh with
    eigenvalues clamped at ``eps``·λ_max); R is the Procrustes rotation between the whitened
    clouds. ``apply`` reproduces the target covariance whenever Σ_s has full rank.
    """
    s, t = _paired(source, target, min_rows=2)
    whitener = _covariance_power(s, -0.5, eps)
    target_whitener = _covariance_power(t, -0.5, eps)
    rotation = orthogonal_procrustes(
        (s - s.mean(dim=0)) @ whitener, (t - t.mean(dim=0)) @ target_whitener, proper=proper
    )
    return WhitenedProcrustes(
        source_mean=s.mean(dim=0),
        target_mean=t.mean(dim=0),
        source_whitener=whitener,
        target_colorer=_covariance_power(t, 0.5, 0.0),
        rotation=rotation,
    )


# --------------------------------------------------------------------------------------------
# Generalised Procrustes


@dataclass(frozen=True)
class GPAResult:
    """Result of :func:`generalized_procrustes` over m corresponded (N, D) sets.

    Set k is aligned as ``scales[k] · (X_k − translations[k]) @ rotations[k].T ≈ consensus``.

    Attributes:
        rotations: (m, D, D) float64, aligning each set to the consensus (to within ``tol``
            when converged: they were fitted to the consensus of the previous iteration).
        consensus: (N, D) float64 mean of the aligned sets (unit Frobenius norm if scaled).
        scales: (m,) float64, 1/‖X_k − t_k‖_F when scaling, else ones.
        translations: (m, D) float64 set means when centring, else zeros.
        history: consensus change ‖Y_new − Y‖_F per iteration.
        converged: whether the last change fell below ``tol``.
    """

    rotations: torch.Tensor
    consensus: torch.Tensor
    scales: torch.Tensor
    translations: torch.Tensor
    history: list[float]
    converged: bool


def generalized_procrustes(
    sets: Sequence[torch.Tensor],
    *,
    center: bool = True,
    scale: bool = False,
    proper: bool = False,
    tol: float = 1e-10,
    max_iter: int = 100,
) -> GPAResult:
    """Gower's generalised Procrustes analysis of m ≥ 2 row-corresponded (N, D) sets.

    Optionally centre each set (and scale it to unit Frobenius norm); start the consensus at
    the first set; then repeatedly align every set to the consensus by
    :func:`orthogonal_procrustes` and replace the consensus by the mean of the aligned sets
    (renormalised when ``scale``) until it moves less than ``tol``. Rotating any input set
    changes the result only by a global rotation of the consensus (for sets whose
    Procrustes solutions are unique, i.e. of full rank).
    """
    if len(sets) < 2:
        raise ValueError(f"generalized Procrustes needs at least 2 sets, got {len(sets)}")
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}")
    xs = torch.stack(_same_shape([_matrix(x, f"sets[{k}]") for k, x in enumerate(sets)]))
    m, _, d = xs.shape
    translations = xs.mean(dim=1) if center else torch.zeros(m, d, dtype=torch.float64)
    xs = xs - translations.unsqueeze(1)
    scales = torch.ones(m, dtype=torch.float64)
    if scale:
        norms = torch.linalg.matrix_norm(xs)
        if (norms == 0).any():
            raise ValueError("cannot scale a set with zero norm (after centring)")
        scales = 1.0 / norms
        xs = xs * scales.view(m, 1, 1)
    consensus = xs[0]
    history: list[float] = []
    converged = False
    for _ in range(max_iter):
        rotations = torch.stack([orthogonal_procrustes(x, consensus, proper=proper) for x in xs])
        new = (xs @ rotations.transpose(1, 2)).mean(dim=0)
        if scale:
            new = new / torch.linalg.matrix_norm(new)
        history.append(torch.linalg.matrix_norm(new - consensus).item())
        consensus = new
        if history[-1] < tol:
            converged = True
            break
    return GPAResult(
        rotations=rotations,
        consensus=consensus,
        scales=scales,
        translations=translations,
        history=history,
        converged=converged,
    )


def _same_shape(sets: list[torch.Tensor]) -> list[torch.Tensor]:
    shapes = {tuple(x.shape) for x in sets}
    if len(shapes) != 1:
        raise ValueError(f"all sets must have the same (N, D) shape, got {sorted(shapes)}")
    return sets
