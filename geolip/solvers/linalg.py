"""Batched thin SVD of tall matrices through the Gram eigendecomposition, and row normalisation.

``gram_svd`` follows upstream (spec §A.3): G = MᵀM in float64, eigh, S = √λ, U = M V / S. Its
backward differentiates that computation as written (eigh of MᵀM, then U = M V S⁻¹) with the
eigenvector term's 1/(λⱼ − λᵢ) replaced by a bounded Lorentzian, so gradients stay finite on
the (nearly) flat spectra of sphere-normalised patches (spec §C.7). Pure tensor math: torch only,
CPU or CUDA.
"""

from __future__ import annotations

import importlib.util
from typing import Literal

import torch
from torch.autograd.function import FunctionCtx, once_differentiable

DEGENERACY_EPS = 1e-10
"""Broadening ε of 1/(λⱼ − λᵢ), relative to λ_max = σ_max², in the eigenvector backward.

F_ij = Δ / (Δ² + (ε λ_max)²) with Δ = λⱼ − λᵢ equals 1/Δ to relative error (ε λ_max / Δ)², below
1e-10 for relative gaps above 1e-5, and is bounded by 1/(2 ε λ_max), reaching 0 at exact
degeneracy. Gaps below ~1e-8 λ_max are lost anyway: float64 eigh resolves eigenvectors only to
≈ 1e-16 λ_max / Δ. This is ε for float64 input. Lower-precision input uses ε = √(machine eps) of
its dtype (float32: 3.5e-4): the gradients flowing back into U, S, Vt then carry that dtype's
rounding u, which breaks the cancellation that makes gauge-invariant losses finite, and the
eigenvector term amplifies it by up to u / (2ε).
"""

SINGULAR_FLOOR_RTOL = 1e-12
"""1/σ uses max(σ, SINGULAR_FLOOR_RTOL·σ_max + √tiny) with tiny that of the input dtype.

The relative part keeps U and its gradient finite on rank-deficient M; the absolute part only
matters for the all-zero matrix, and √tiny keeps 1/floor² representable in the input dtype.
"""

EIGH_CHUNK = 16_384
"""Default number of matrices per eigh call: batched cuSOLVER eigh fails at batch ≥ 65,536."""


def sphere_normalize(m: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Divide every row (last dim) by max(‖row‖₂, ``eps``): upstream row normalisation (§A.2).

    Args:
        m: (..., D) real floating tensor.
        eps: norm floor; rows shorter than it are scaled by 1/eps, so zero rows stay zero.

    Returns:
        (..., D) tensor of m's dtype whose nonzero rows (norm ≥ eps) have unit norm; odd in m.
    """
    return torch.nn.functional.normalize(m, dim=-1, eps=eps)


SVDMethod = Literal["auto", "eigh", "fused"]


FUSED_MAX_D = 16
"""Largest D the fused kernels take: D ≤ 8 one thread per matrix holds its D×D float64 tiles in
registers; 8 < D ≤ 16 the 16×16 tiles are spread over the threads of a warp, and the Jacobi
sweeps rotate 8 disjoint planes at a time."""


def fused_svd_supported(v: int, d: int) -> bool:
    """Whether the fused Triton kernels take (V, D) matrices: 1 ≤ D ≤ FUSED_MAX_D, any V ≥ D."""
    return 1 <= d <= FUSED_MAX_D and v >= d


def gram_svd(
    m: torch.Tensor, chunk_size: int = EIGH_CHUNK, method: SVDMethod = "auto"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Thin SVD M = U diag(S) Vt of a batch of tall matrices via eigh of MᵀM in float64.

    Two implementations of one function. ``"eigh"``: float64 Gram + ``torch.linalg.eigh`` on
    at most ``chunk_size`` matrices at a time (the result does not depend on ``chunk_size``),
    cast back to m's dtype; CPU or CUDA. ``"fused"``: Triton kernels, two launches forward and
    one backward (:mod:`geolip.solvers._svd_triton`), D ≤ FUSED_MAX_D: float64 Jacobi
    eigensolver in registers, U re-orthonormalised where M is ill-conditioned, so UᵀU = I even
    for rank-deficient M; no batch limit, no host synchronisation; S and Vt are
    computed in float64 and rounded to m's dtype. ``"auto"`` takes ``"fused"`` for CUDA
    tensors with D ≤ FUSED_MAX_D (where it measured fastest) when Triton is installed, else
    ``"eigh"``. Both backwards apply the same rule below, so the paths agree.
    Differentiable (custom backward, once): finite for equal or zero singular values, and exact
    for distinct ones; U diag(S) Vt has the identity as its derivative even at exact degeneracy.
    Other gauge-invariant uses that are smooth through a degeneracy (U Uᵀ, Vtᵀ g(S) Vt) lose
    their coupling between the nearly equal σ once the relative gap of σ² falls below ~ε
    (DEGENERACY_EPS): gradients wrt U, S, Vt carry it only as 0/0 there.

    Args:
        m: (..., V, D) real floating tensor with V ≥ D ≥ 1; leading dims are any batch shape.
        chunk_size: matrices per eigh call, ≥ 1 (``"eigh"`` only).
        method: ``"auto"``, ``"eigh"`` or ``"fused"``.

    Returns:
        U: (..., V, D) with UᵀU = I on columns whose σ is well above the floor (columns of
            zero σ are M v / floor, i.e. small rounding noise).
        S: (..., D) singular values, descending, ≥ 0.
        Vt: (..., D, D) orthogonal; its rows are the right singular vectors. The sign of each
            singular pair (column of U, row of Vt) is whatever eigh returns.

    Raises:
        ValueError: m is not a real floating tensor of shape (..., V, D) with V ≥ D ≥ 1,
            chunk_size < 1, or method is unknown or ``"fused"`` for matrices it cannot take.
        ImportError: method is ``"fused"`` and Triton is not installed.
    """
    if not isinstance(m, torch.Tensor):
        raise ValueError(f"m must be a torch.Tensor, got {type(m).__name__}")
    if not m.is_floating_point():
        raise ValueError(f"m must be a real floating tensor, got dtype {m.dtype}")
    if m.ndim < 2:
        raise ValueError(f"m must have shape (..., V, D), got shape {tuple(m.shape)}")
    *batch, v, d = m.shape
    if d < 1 or v < d:
        raise ValueError(f"m must be tall, (..., V, D) with V ≥ D ≥ 1, got V={v}, D={d}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    if method not in ("auto", "eigh", "fused"):
        raise ValueError(f"method must be 'auto', 'eigh' or 'fused', got {method!r}")
    if method == "fused" and not fused_svd_supported(v, d):
        raise ValueError(f"the fused kernels take D ≤ {FUSED_MAX_D}, got {v}×{d}")
    flat = m.reshape(-1, v, d)
    if method == "fused" or (method == "auto" and _auto_fused(flat)):
        u, s, vt = _FusedGramSVD.apply(flat)
    else:
        u, s, vt = _GramSVD.apply(flat, chunk_size)
    return u.reshape(*batch, v, d), s.reshape(*batch, d), vt.reshape(*batch, d, d)


def _auto_fused(m: torch.Tensor) -> bool:
    """``"auto"`` takes the fused kernels for every CUDA shape they take. Measured on an H200
    (2026-12-03, docs/benchmarks.md): faster than the eigh route and than chunked gesvda,
    forward and forward+backward, at 48×4, 32×3, 48×5, 64×8, 256×8 and 256×16."""
    supported = fused_svd_supported(*m.shape[-2:])
    return m.is_cuda and supported and importlib.util.find_spec("triton") is not None


def _degeneracy_eps(dtype: torch.dtype) -> float:
    """Relative broadening ε for input of ``dtype`` (see DEGENERACY_EPS)."""
    return DEGENERACY_EPS if dtype == torch.float64 else torch.finfo(dtype).eps ** 0.5


def _singular_floor(s: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, 1) floor below which σ is treated as zero in 1/σ; s is (B, D) descending."""
    return SINGULAR_FLOOR_RTOL * s[:, :1] + torch.finfo(dtype).tiny ** 0.5


class _GramSVD(torch.autograd.Function):
    """(B, V, D) → U (B, V, D), S (B, D), Vt (B, D, D); all float64 inside."""

    @staticmethod
    def forward(
        ctx: FunctionCtx, m: torch.Tensor, chunk_size: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        with torch.autocast(device_type=m.device.type, enabled=False):
            m64 = m.to(torch.float64)
            gram = m64.mT @ m64
            parts = [torch.linalg.eigh(g) for g in gram.split(chunk_size)]
            lam = torch.cat([p.eigenvalues for p in parts]).flip(-1)
            q = torch.cat([p.eigenvectors for p in parts]).flip(-1)
            s = lam.clamp_min(0).sqrt()
            floor = _singular_floor(s, m.dtype)
            u = (m64 @ q) / torch.maximum(s, floor).unsqueeze(-2)
        ctx.save_for_backward(m, q, s)
        return u.to(m.dtype), s.to(m.dtype), q.mT.to(m.dtype)

    @staticmethod
    @once_differentiable
    def backward(
        ctx: FunctionCtx, g_u: torch.Tensor, g_s: torch.Tensor, g_vt: torch.Tensor
    ) -> tuple[torch.Tensor, None]:
        m, q, s = ctx.saved_tensors
        with torch.autocast(device_type=m.device.type, enabled=False):
            f64 = torch.float64
            m64 = m.to(f64)
            floor = _singular_floor(s, m.dtype)
            s_safe = torch.maximum(s, floor)

            # U = M Q / max(S, floor): direct path to M, then to Q and (above the floor) to S.
            g_u_scaled = g_u.to(f64) / s_safe.unsqueeze(-2)
            y = m64.mT @ g_u_scaled
            g_q = g_vt.to(f64).mT + y
            g_s_total = g_s.to(f64) - torch.where(s > floor, (q * y).sum(-2) / s_safe, 0.0)

            # S = √λ, then eigh of G = MᵀM: with X = Qᵀ ∂L/∂Q and F_ij ≈ 1/(λⱼ − λᵢ),
            # ∂L/∂M = M Q (F ∘ (X − Xᵀ) + 2 diag(∂L/∂λ)) Qᵀ. F is computed on λ / λ_max so that
            # it neither under- nor overflows at tiny or huge scale.
            g_lam = g_s_total / (2 * s_safe)
            lam = s.square()
            lam_max = lam[:, :1].unsqueeze(-1).clamp_min(torch.finfo(f64).tiny)
            gap = (lam.unsqueeze(-2) - lam.unsqueeze(-1)) / lam_max
            f = gap / (gap.square() + _degeneracy_eps(m.dtype) ** 2) / lam_max
            x = q.mT @ g_q
            inner = f * (x - x.mT) + torch.diag_embed(2 * g_lam)
            g_m = g_u_scaled @ q.mT + m64 @ (q @ inner @ q.mT)
        return g_m.to(m.dtype), None


class _FusedGramSVD(torch.autograd.Function):
    """The fused Triton forward and backward; saves M and the float32/64 S, Vt."""

    @staticmethod
    def forward(
        ctx: FunctionCtx, m: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        from geolip.solvers._svd_triton import fused_svd_forward

        m = m.contiguous()
        u, s, vt = fused_svd_forward(m, SINGULAR_FLOOR_RTOL)
        ctx.save_for_backward(m, s, vt)
        return u, s.to(m.dtype), vt.to(m.dtype)

    @staticmethod
    @once_differentiable
    def backward(
        ctx: FunctionCtx, g_u: torch.Tensor, g_s: torch.Tensor, g_vt: torch.Tensor
    ) -> torch.Tensor:
        from geolip.solvers._svd_triton import fused_svd_backward

        m, s, vt = ctx.saved_tensors
        return fused_svd_backward(
            m,
            s,
            vt,
            g_u.contiguous(),
            g_s.to(s.dtype).contiguous(),
            g_vt.to(vt.dtype).contiguous(),
            floor_abs=torch.finfo(m.dtype).tiny ** 0.5,
            floor_rtol=SINGULAR_FLOOR_RTOL,
            degeneracy_eps=_degeneracy_eps(m.dtype),
        )
