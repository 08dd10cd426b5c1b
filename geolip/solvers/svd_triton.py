"""Fused thin SVD of small tall matrices on the GPU (Triton): one launch forward, one backward.

Each program takes BLOCK matrices of shape (V, D), D ≤ 16, and keeps them in registers as a
(BLOCK, VP, DP) float64 tile (VP, DP: V and D rounded up to powers of two, padding masked).
Forward, all in float64:

1. scale every matrix by 1/max|M| (tiny and huge inputs behave like unit ones);
2. G = MᵀM; cyclic two-sided Jacobi sweeps on G accumulate the eigenvectors Q;
3. sort eigenvalues descending (rank counting, no data-dependent branches), S = √λ;
4. U = M Q / max(S, floor), then modified Gram–Schmidt twice over U's columns. Columns with σ
   near zero (rank-deficient M) are completed with the standard basis vector that is farthest
   from the span of the previous columns, so UᵀU = I always. MGS moves a well-resolved column
   only by its rounding error, so M = U diag(S) Vt keeps full accuracy.

The backward is the same computation as :class:`geolip.solvers.linalg._GramSVD.backward`
(differentiating eigh of MᵀM and U = M Q S⁻¹ with the bounded 1/(λⱼ − λᵢ)), so the CPU and GPU
paths give the same gradients. D×D products inside a tile are unrolled over D with masked
selects; Triton has no per-element indexing of register tensors.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _row(a, rows, r: tl.constexpr):
    """Row r of a (BLOCK, N, K) tile → (BLOCK, K)."""
    return tl.sum(tl.where(rows == r, a, 0.0), axis=1)


@triton.jit
def _col(a, cols, c: tl.constexpr):
    """Column c of a (BLOCK, N, K) tile → (BLOCK, N)."""
    return tl.sum(tl.where(cols == c, a, 0.0), axis=2)


@triton.jit
def _entry(vec, idx, i: tl.constexpr):
    """Entry i of a (BLOCK, K) tile → (BLOCK,)."""
    return tl.sum(tl.where(idx == i, vec, 0.0), axis=1)


@triton.jit
def _jacobi_rotation(g, q, rows, cols, idx, p: tl.constexpr, r: tl.constexpr):
    """One Jacobi rotation in the (p, r) plane: G ← JᵀGJ zeroes G[p, r]; Q ← QJ."""
    gp = _row(g, rows, p)
    gr = _row(g, rows, r)
    app = _entry(gp, idx, p)
    apr = _entry(gp, idx, r)
    arr = _entry(gr, idx, r)
    nonzero = apr != 0.0
    tau = (arr - app) / (2.0 * tl.where(nonzero, apr, 1.0))
    t = tl.where(tau >= 0.0, 1.0, -1.0) / (tl.abs(tau) + tl.sqrt(1.0 + tau * tau))
    t = tl.where(nonzero, t, 0.0)
    c = 1.0 / tl.sqrt(1.0 + t * t)
    s = t * c
    # rows p, r of JᵀGJ (symmetric: they are also its columns p, r)
    new_p = c[:, None] * gp - s[:, None] * gr
    new_r = s[:, None] * gp + c[:, None] * gr
    new_p = tl.where(idx == p, (app - t * apr)[:, None], tl.where(idx == r, 0.0, new_p))
    new_r = tl.where(idx == r, (arr + t * apr)[:, None], tl.where(idx == p, 0.0, new_r))
    g = tl.where(
        rows == p,
        new_p[:, None, :],
        tl.where(
            rows == r,
            new_r[:, None, :],
            tl.where(cols == p, new_p[:, :, None], tl.where(cols == r, new_r[:, :, None], g)),
        ),
    )
    qp = _col(q, cols, p)
    qr = _col(q, cols, r)
    q = tl.where(
        cols == p,
        (c[:, None] * qp - s[:, None] * qr)[:, :, None],
        tl.where(cols == r, (s[:, None] * qp + c[:, None] * qr)[:, :, None], q),
    )
    return g, q


@triton.jit
def _orthonormalize(u, vidx, cols, V: tl.constexpr, D: tl.constexpr):
    """MGS twice over the D columns of u (BLOCK, VP, DP); near-null columns are completed.

    vidx: (1, VP) row indices.
    """
    for j in tl.static_range(D):
        uj = _col(u, cols, j)
        for _ in tl.static_range(2):
            for i in tl.static_range(j):
                ui = _col(u, cols, i)
                uj = uj - tl.sum(ui * uj, axis=1)[:, None] * ui
        norm = tl.sqrt(tl.sum(uj * uj, axis=1))
        # completion: of e_0..e_j one is at squared distance ≥ 1/(j+1) from span(u_0..u_{j-1})
        covered = tl.sum(tl.where(cols < j, u * u, 0.0), axis=2)  # (BLOCK, VP)
        covered = tl.where((vidx <= j) & (vidx < V), covered, 2.0)
        k = tl.argmin(covered, axis=1)  # (BLOCK,)
        e = tl.where(vidx == k[:, None], 1.0, 0.0)
        for _ in tl.static_range(2):
            for i in tl.static_range(j):
                ui = _col(u, cols, i)
                e = e - tl.sum(ui * e, axis=1)[:, None] * ui
        bad = norm < 0.5
        uj = tl.where(bad[:, None], e, uj)
        norm = tl.sqrt(tl.sum(uj * uj, axis=1))
        u = tl.where(cols == j, (uj / norm[:, None])[:, :, None], u)
    return u


@triton.jit
def gram_svd_forward_kernel(
    m_ptr,
    u_ptr,
    s_ptr,
    vt_ptr,
    n_matrices,
    V: tl.constexpr,
    D: tl.constexpr,
    VP: tl.constexpr,
    DP: tl.constexpr,
    BLOCK: tl.constexpr,
    SWEEPS: tl.constexpr,
    FLOOR_RTOL: tl.constexpr,
):
    """M (B, V, D) → U (B, V, D), S (B, D) descending, Vt (B, D, D); see the module doc."""
    pid = tl.program_id(0)
    b = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    b3 = b[:, None, None]
    vrow = tl.arange(0, VP)[None, :, None]
    rows = tl.arange(0, DP)[None, :, None]
    cols = tl.arange(0, DP)[None, None, :]
    idx = tl.arange(0, DP)[None, :]
    live = b3 < n_matrices
    tile_mask = live & (vrow < V) & (cols < D)
    m = tl.load(m_ptr + b3 * (V * D) + vrow * D + cols, mask=tile_mask, other=0.0).to(tl.float64)

    scale = tl.max(tl.max(tl.abs(m), axis=2), axis=1)  # (BLOCK,)
    scale = tl.where(scale > 0.0, scale, 1.0)
    m = m / scale[:, None, None]

    g = tl.zeros((BLOCK, DP, DP), dtype=tl.float64)
    for i in tl.static_range(D):
        g = tl.where(rows == i, tl.sum(_col(m, cols, i)[:, :, None] * m, axis=1)[:, None, :], g)
    q = tl.where(rows == cols, 1.0, 0.0) + tl.zeros((BLOCK, DP, DP), dtype=tl.float64)
    for _ in range(SWEEPS):
        for p in tl.static_range(D - 1):
            for r in tl.static_range(p + 1, D):
                g, q = _jacobi_rotation(g, q, rows, cols, idx, p, r)

    # sort descending: rank_i = #{j : λj > λi or (λj = λi and j < i)}; padding ranks last
    lam = tl.sum(tl.where(rows == cols, g, 0.0), axis=2)  # (BLOCK, DP), index i
    lam = tl.where(idx < D, lam, -1.0e300)
    before = (lam[:, None, :] > lam[:, :, None]) | (
        (lam[:, None, :] == lam[:, :, None]) & (cols < rows)
    )
    rank = tl.sum(before.to(tl.int32), axis=2)  # (BLOCK, DP), index i
    perm = tl.where(rank[:, :, None] == cols, 1.0, 0.0)  # perm[i, r] = [rank_i = r]
    lam_sorted = tl.sum(perm * lam[:, :, None], axis=1)  # (BLOCK, DP), index r
    q_sorted = tl.zeros((BLOCK, DP, DP), dtype=tl.float64)
    for i in tl.static_range(D):
        q_sorted += _col(q, cols, i)[:, :, None] * _row(perm, rows, i)[:, None, :]
    s = tl.sqrt(tl.maximum(lam_sorted, 0.0))  # scaled units
    s0 = _entry(s, idx, 0)
    # in scaled units no absolute floor is needed: s0 ≥ 1 whenever M ≠ 0
    s_safe = tl.maximum(s, (FLOOR_RTOL * s0 + 1.0e-300)[:, None])

    u = tl.zeros((BLOCK, VP, DP), dtype=tl.float64)
    for k in tl.static_range(D):
        u += _col(m, cols, k)[:, :, None] * _row(q_sorted, rows, k)[:, None, :]
    u = _orthonormalize(u / s_safe[:, None, :], tl.arange(0, VP)[None, :], cols, V, D)

    tl.store(
        u_ptr + b3 * (V * D) + vrow * D + cols,
        u.to(u_ptr.dtype.element_ty),
        mask=tile_mask,
    )
    b2 = b[:, None]
    tl.store(
        s_ptr + b2 * D + idx,
        (s * scale[:, None]).to(s_ptr.dtype.element_ty),
        mask=(b2 < n_matrices) & (idx < D),
    )
    # Vt[r, k] = Q_sorted[k, r]: tile axis 1 is k, axis 2 is r
    tl.store(
        vt_ptr + b3 * (D * D) + cols * D + rows,
        q_sorted.to(vt_ptr.dtype.element_ty),
        mask=live & (rows < D) & (cols < D),
    )


@triton.jit
def gram_svd_backward_kernel(
    m_ptr,
    s_ptr,
    vt_ptr,
    gu_ptr,
    gs_ptr,
    gvt_ptr,
    gm_ptr,
    n_matrices,
    floor_abs,
    degeneracy_eps,
    V: tl.constexpr,
    D: tl.constexpr,
    VP: tl.constexpr,
    DP: tl.constexpr,
    BLOCK: tl.constexpr,
    FLOOR_RTOL: tl.constexpr,
):
    """∂L/∂M from (M, S, Vt) and the output gradients; the rule of the CPU backward."""
    pid = tl.program_id(0)
    b = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    b3 = b[:, None, None]
    b2 = b[:, None]
    vrow = tl.arange(0, VP)[None, :, None]
    rows = tl.arange(0, DP)[None, :, None]
    cols = tl.arange(0, DP)[None, None, :]
    idx = tl.arange(0, DP)[None, :]
    live = b3 < n_matrices
    tile_mask = live & (vrow < V) & (cols < D)
    tile = b3 * (V * D) + vrow * D + cols
    small_mask = live & (rows < D) & (cols < D)
    vec_mask = (b2 < n_matrices) & (idx < D)

    m = tl.load(m_ptr + tile, mask=tile_mask, other=0.0).to(tl.float64)
    g_u = tl.load(gu_ptr + tile, mask=tile_mask, other=0.0).to(tl.float64)
    s = tl.load(s_ptr + b2 * D + idx, mask=vec_mask, other=0.0).to(tl.float64)
    g_s = tl.load(gs_ptr + b2 * D + idx, mask=vec_mask, other=0.0).to(tl.float64)
    # q[k, r] = Vt[r, k]; g_vtᵀ likewise
    q = tl.load(vt_ptr + b3 * (D * D) + cols * D + rows, mask=small_mask, other=0.0).to(tl.float64)
    g_vt_t = tl.load(gvt_ptr + b3 * (D * D) + cols * D + rows, mask=small_mask, other=0.0).to(
        tl.float64
    )

    s0 = _entry(s, idx, 0)
    floor = (FLOOR_RTOL * s0 + floor_abs)[:, None]
    s_safe = tl.maximum(s, floor)
    s_safe = tl.where(idx < D, s_safe, 1.0)
    g_u_scaled = g_u / s_safe[:, None, :]

    y = tl.zeros((BLOCK, DP, DP), dtype=tl.float64)  # Mᵀ (g_U / S)
    for i in tl.static_range(D):
        y = tl.where(
            rows == i, tl.sum(_col(m, cols, i)[:, :, None] * g_u_scaled, axis=1)[:, None, :], y
        )
    g_q = g_vt_t + y
    qy = tl.sum(q * y, axis=1)  # (BLOCK, DP), index j
    g_s_total = g_s - tl.where(s > floor, qy / s_safe, 0.0)
    g_lam = g_s_total / (2.0 * s_safe)

    lam = s * s
    lam_max = tl.maximum(_entry(lam, idx, 0), 2.2250738585072014e-308)[:, None, None]
    gap = (lam[:, None, :] - lam[:, :, None]) / lam_max  # gap[i, j] = (λj − λi) / λmax
    f = gap / (gap * gap + degeneracy_eps * degeneracy_eps) / lam_max

    x = tl.zeros((BLOCK, DP, DP), dtype=tl.float64)  # Qᵀ g_Q
    x_t = tl.zeros((BLOCK, DP, DP), dtype=tl.float64)
    for k in tl.static_range(D):
        qk = _row(q, rows, k)
        gk = _row(g_q, rows, k)
        x += qk[:, :, None] * gk[:, None, :]
        x_t += gk[:, :, None] * qk[:, None, :]
    inner = f * (x - x_t) + tl.where(rows == cols, 2.0 * g_lam[:, None, :], 0.0)

    q_inner = tl.zeros((BLOCK, DP, DP), dtype=tl.float64)  # Q · inner
    for k in tl.static_range(D):
        q_inner += _col(q, cols, k)[:, :, None] * _row(inner, rows, k)[:, None, :]
    w = tl.zeros((BLOCK, DP, DP), dtype=tl.float64)  # Q · inner · Qᵀ
    for k in tl.static_range(D):
        w += _col(q_inner, cols, k)[:, :, None] * _col(q, cols, k)[:, None, :]

    g_m = tl.zeros((BLOCK, VP, DP), dtype=tl.float64)  # (g_U / S) Qᵀ + M W
    for k in tl.static_range(D):
        g_m += _col(g_u_scaled, cols, k)[:, :, None] * _col(q, cols, k)[:, None, :]
        g_m += _col(m, cols, k)[:, :, None] * _row(w, rows, k)[:, None, :]
    tl.store(gm_ptr + tile, g_m.to(gm_ptr.dtype.element_ty), mask=tile_mask)


MAX_D = 16
"""Largest D the fused kernels take; VP·DP·BLOCK is kept near 2,048 elements per program."""


def _tile(v: int, d: int) -> tuple[int, int, int]:
    """(VP, DP, BLOCK): padded sizes and matrices per program for (V, D) matrices."""
    vp, dp = triton.next_power_of_2(v), triton.next_power_of_2(d)
    return vp, dp, max(1, min(16, 2048 // (vp * dp)))


def jacobi_sweeps(d: int) -> int:
    """Cyclic Jacobi sweeps run for D columns: float64 convergence with margin."""
    return 6 if d <= 4 else 8 if d <= 8 else 10


def fused_svd_forward(
    m: torch.Tensor, floor_rtol: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """M (B, V, D) contiguous → U (B, V, D) in M's dtype; S (B, D), Vt (B, D, D) in float32
    (float64 for float64 M)."""
    n, v, d = m.shape
    vp, dp, block = _tile(v, d)
    aux = torch.float64 if m.dtype == torch.float64 else torch.float32
    u = torch.empty_like(m)
    s = torch.empty((n, d), dtype=aux, device=m.device)
    vt = torch.empty((n, d, d), dtype=aux, device=m.device)
    grid = (triton.cdiv(n, block),)
    gram_svd_forward_kernel[grid](
        m, u, s, vt, n,
        V=v, D=d, VP=vp, DP=dp, BLOCK=block, SWEEPS=jacobi_sweeps(d), FLOOR_RTOL=floor_rtol,
    )  # fmt: skip
    return u, s, vt


def fused_svd_backward(
    m: torch.Tensor,
    s: torch.Tensor,
    vt: torch.Tensor,
    g_u: torch.Tensor,
    g_s: torch.Tensor,
    g_vt: torch.Tensor,
    floor_abs: float,
    floor_rtol: float,
    degeneracy_eps: float,
) -> torch.Tensor:
    """∂L/∂M (B, V, D) in M's dtype from the saved (M, S, Vt) and contiguous output grads."""
    n, v, d = m.shape
    vp, dp, block = _tile(v, d)
    g_m = torch.empty_like(m)
    grid = (triton.cdiv(n, block),)
    gram_svd_backward_kernel[grid](
        m, s, vt, g_u, g_s, g_vt, g_m, n, floor_abs, degeneracy_eps,
        V=v, D=d, VP=vp, DP=dp, BLOCK=block, FLOOR_RTOL=floor_rtol,
    )  # fmt: skip
    return g_m
