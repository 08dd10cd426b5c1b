"""Fused thin SVD of small tall matrices on the GPU (Triton): one launch forward, one backward.

A program owns BLOCK matrices M (V, D), D ≤ 8, in (DP, DP, BLOCK) and (DP, BLOCK) tiles with the
batch last (DP: D padded to a power of two). With BLOCK = 32·warps one thread owns one matrix
and every D×D operation stays in its registers (the masked selects compile to register picks);
a smaller BLOCK spreads a matrix over several threads (``KernelConfig``). Rows of M are read and
written R at a time as one (R, DP, BLOCK) tile: a thread's R·D words are contiguous, which is
what lets these passes run at the memory floor (``experiments/svd_load_patterns.py``).
Forward, all in float64:

1. G = MᵀM (one pass over the rows); cyclic two-sided Jacobi sweeps on G accumulate Q;
2. sort eigenvalues descending (rank counting, no data-dependent branches), S = √λ;
3. C = U₀ᵀU₀ and H = U₀[:D] for U₀ = M Q / max(S, floor): if every matrix of the program has
   σ_min ≥ WELL_CONDITIONED·σ_max, C is read off the rotated Gram (QᵀGQ, error ≈ ε₆₄κ² ≤ 1e-10)
   and only the first D rows are read, for H; otherwise a second pass sums C over U₀'s rows,
   exact where U₀ is. Modified Gram–Schmidt, twice, runs in coefficient space with C as the
   inner product, so U = U₀ A + E B stays exact where U₀ is: columns of (near-)zero σ are
   replaced by the standard basis vector e_k (k ≤ j) farthest from the span of the previous
   columns (E B holds those);
4. a last pass writes U. UᵀU = I for every input, rank-deficient and zero included.

The backward is the computation of :class:`geolip.solvers.linalg._GramSVD.backward`
(differentiating eigh of MᵀM and U = M Q S⁻¹ with the bounded 1/(λⱼ − λᵢ)) in two passes over
the rows, so the CPU and GPU paths give the same gradients.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import triton
import triton.language as tl

WELL_CONDITIONED = 1e-3
"""σ_min/σ_max above which the forward takes U₀ᵀU₀ from the rotated Gram (error ≈ ε₆₄κ²)
instead of a pass over the rows."""


@triton.jit
def _row(a, rows, r):
    """Row r of a (N, K, BLOCK) tile → (K, BLOCK)."""
    return tl.sum(tl.where(rows == r, a, 0.0), axis=0)


@triton.jit
def _col(a, cols, c):
    """Column c of a (N, K, BLOCK) tile → (N, BLOCK)."""
    return tl.sum(tl.where(cols == c, a, 0.0), axis=1)


@triton.jit
def _entry(vec, idx, i):
    """Entry i of a (K, BLOCK) tile → (BLOCK,)."""
    return tl.sum(tl.where(idx == i, vec, 0.0), axis=0)


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
    new_p = c[None, :] * gp - s[None, :] * gr
    new_r = s[None, :] * gp + c[None, :] * gr
    new_p = tl.where(idx == p, (app - t * apr)[None, :], tl.where(idx == r, 0.0, new_p))
    new_r = tl.where(idx == r, (arr + t * apr)[None, :], tl.where(idx == p, 0.0, new_r))
    g = tl.where(
        rows == p,
        new_p[None, :, :],
        tl.where(
            rows == r,
            new_r[None, :, :],
            tl.where(cols == p, new_p[:, None, :], tl.where(cols == r, new_r[:, None, :], g)),
        ),
    )
    qp = _col(q, cols, p)
    qr = _col(q, cols, r)
    q = tl.where(
        cols == p,
        (c[None, :] * qp - s[None, :] * qr)[:, None, :],
        tl.where(cols == r, (s[None, :] * qp + c[None, :] * qr)[:, None, :], q),
    )
    return g, q


@triton.jit
def _k_dot(a, b, a2, b2, c, h):
    """⟨U₀a + Eb, U₀a₂ + Eb₂⟩ from C = U₀ᵀU₀ and H = U₀[:D] (E = first D basis vectors)."""
    ca2 = tl.sum(c * a2[None, :, :], axis=1)
    ha2 = tl.sum(h * a2[None, :, :], axis=1)
    ha = tl.sum(h * a[None, :, :], axis=1)
    return tl.sum(a * ca2 + b * ha2 + b2 * ha + b * b2, axis=0)


@triton.jit
def _orthonormal_coefficients(
    c, h, rows, cols, idx, D: tl.constexpr, DP: tl.constexpr, BLOCK: tl.constexpr
):
    """MGS twice in coefficient space → A, B (DP, DP, BLOCK): column j of U is U₀a_j + Eb_j."""
    coef_a = tl.zeros((DP, DP, BLOCK), dtype=tl.float64)
    coef_b = tl.zeros((DP, DP, BLOCK), dtype=tl.float64)
    for j in tl.static_range(D):
        a = tl.where(idx == j, 1.0, 0.0) + tl.zeros((DP, BLOCK), dtype=tl.float64)
        b = tl.zeros((DP, BLOCK), dtype=tl.float64)
        cand_a = tl.zeros((DP, BLOCK), dtype=tl.float64)
        covered = tl.zeros((DP, BLOCK), dtype=tl.float64)
        for i in tl.static_range(j):  # ⟨u_i, e_k⟩ = (H a_i)_k + (b_i)_k
            proj = tl.sum(h * _col(coef_a, cols, i)[None, :, :], axis=1) + _col(coef_b, cols, i)
            covered += proj * proj
        # of e_0..e_j one is at squared distance ≥ 1/(j+1) from span(u_0..u_{j-1})
        covered = tl.where(idx <= j, covered, 2.0)
        k = tl.argmin(covered, axis=0)
        cand_b = tl.where(idx == k[None, :], 1.0, 0.0)
        for _ in tl.static_range(2):
            for i in tl.static_range(j):
                ai = _col(coef_a, cols, i)
                bi = _col(coef_b, cols, i)
                w = _k_dot(ai, bi, a, b, c, h)
                a -= w[None, :] * ai
                b -= w[None, :] * bi
                w = _k_dot(ai, bi, cand_a, cand_b, c, h)
                cand_a -= w[None, :] * ai
                cand_b -= w[None, :] * bi
        bad = _k_dot(a, b, a, b, c, h) < 0.25
        a = tl.where(bad[None, :], cand_a, a)
        b = tl.where(bad[None, :], cand_b, b)
        norm = tl.sqrt(_k_dot(a, b, a, b, c, h))
        coef_a = tl.where(cols == j, (a / norm[None, :])[:, None, :], coef_a)
        coef_b = tl.where(cols == j, (b / norm[None, :])[:, None, :], coef_b)
    return coef_a, coef_b


@triton.jit
def _program_tiles(n_matrices, D: tl.constexpr, DP: tl.constexpr, BLOCK: tl.constexpr):
    """This program's matrix indices b (BLOCK,), live (BLOCK,), and the row/column index tiles
    of a (DP, DP, BLOCK) tile and the index of a (DP, BLOCK) tile."""
    b = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    idx = tl.arange(0, DP)[:, None]
    rows = tl.arange(0, DP)[:, None, None]
    cols = tl.arange(0, DP)[None, :, None]
    return b, b < n_matrices, rows, cols, idx


@triton.jit
def _chunk_offsets(b, live, v0, V: tl.constexpr, D: tl.constexpr, DP: tl.constexpr,
                   R: tl.constexpr):  # fmt: skip
    """Offsets and mask of rows v0 … v0+R−1 of every matrix: an (R, DP, BLOCK) tile."""
    r = tl.arange(0, R)[:, None, None]
    k = tl.arange(0, DP)[None, :, None]
    offsets = b[None, None, :] * (V * D) + (v0 + r) * D + k
    return offsets, live[None, None, :] & (k < D) & (v0 + r < V)


@triton.jit
def _load_chunk(ptr, b, live, v0, V: tl.constexpr, D: tl.constexpr, DP: tl.constexpr,
                R: tl.constexpr):  # fmt: skip
    """Rows v0 … v0+R−1 of every matrix as an (R, DP, BLOCK) float64 tile, zero-padded."""
    offsets, mask = _chunk_offsets(b, live, v0, V, D, DP, R)
    return tl.load(ptr + offsets, mask=mask, other=0.0).to(tl.float64)


@triton.jit
def _store_chunk(ptr, x, b, live, v0, V: tl.constexpr, D: tl.constexpr, DP: tl.constexpr,
                 R: tl.constexpr):  # fmt: skip
    offsets, mask = _chunk_offsets(b, live, v0, V, D, DP, R)
    tl.store(ptr + offsets, x.to(ptr.dtype.element_ty), mask=mask)


@triton.jit
def _times(x, w):
    """Rows of a chunk times a D×D matrix: (R, DP, BLOCK) · (DP, DP, BLOCK) → (R, DP, BLOCK)."""
    return tl.sum(x[:, :, None, :] * w[None, :, :, :], axis=1)


@triton.jit
def _outer_sum(x, y):
    """Σ_r x_rᵀ y_r over a chunk: (R, DP, BLOCK), (R, DP, BLOCK) → (DP, DP, BLOCK)."""
    return tl.sum(x[:, :, None, :] * y[:, None, :, :], axis=0)


@triton.jit
def _scatter_rows(x, v0, DP: tl.constexpr, R: tl.constexpr):
    """Chunk rows v0 … v0+R−1 (R, DP, BLOCK) placed as rows of a (DP, DP, BLOCK) tile (rows
    ≥ DP dropped, others zero)."""
    r = tl.arange(0, R)[:, None, None, None]
    k = tl.arange(0, DP)[None, :, None, None]
    return tl.sum(tl.where(v0 + r == k, x[:, None, :, :], 0.0), axis=0)


@triton.jit
def _gather_rows(t, v0, DP: tl.constexpr, R: tl.constexpr):
    """Rows v0 … v0+R−1 of a (DP, DP, BLOCK) tile as an (R, DP, BLOCK) chunk (zero past DP)."""
    r = tl.arange(0, R)[:, None, None, None]
    k = tl.arange(0, DP)[None, :, None, None]
    return tl.sum(tl.where(v0 + r == k, t[None, :, :, :], 0.0), axis=1)


@triton.jit
def gram_svd_forward_kernel(
    m_ptr,
    u_ptr,
    s_ptr,
    vt_ptr,
    n_matrices,
    V: tl.constexpr,
    D: tl.constexpr,
    DP: tl.constexpr,
    BLOCK: tl.constexpr,
    R: tl.constexpr,
    SWEEPS: tl.constexpr,
    FLOOR_RTOL: tl.constexpr,
    WELL_CONDITIONED: tl.constexpr,
):
    """M (B, V, D) → U (B, V, D), S (B, D) descending, Vt (B, D, D); see the module doc."""
    b, live, rows, cols, idx = _program_tiles(n_matrices, D, DP, BLOCK)

    g = tl.zeros((DP, DP, BLOCK), dtype=tl.float64)
    for v0 in range(0, V, R):
        x = _load_chunk(m_ptr, b, live, v0, V, D, DP, R)
        g += _outer_sum(x, x)
    q = tl.where(rows == cols, 1.0, 0.0) + tl.zeros((DP, DP, BLOCK), dtype=tl.float64)
    for _ in range(SWEEPS):
        for p in tl.static_range(D - 1):
            for r in tl.static_range(p + 1, D):
                g, q = _jacobi_rotation(g, q, rows, cols, idx, p, r)

    # sort descending: rank_i = #{j : λj > λi or (λj = λi and j < i)}; padding ranks last
    lam = tl.sum(tl.where(rows == cols, g, 0.0), axis=1)  # (DP, BLOCK), index i
    lam = tl.where(idx < D, lam, -1.0e300)
    before = (lam[None, :, :] > lam[:, None, :]) | (
        (lam[None, :, :] == lam[:, None, :]) & (cols < rows)
    )
    rank = tl.sum(before.to(tl.int32), axis=1)  # (DP, BLOCK), index i
    perm = tl.where(rank[:, None, :] == cols, 1.0, 0.0)  # perm[i, r] = [rank_i = r]
    s = tl.sqrt(tl.maximum(tl.sum(perm * lam[:, None, :], axis=0), 0.0))  # (DP, BLOCK), index r
    q_sorted = tl.zeros((DP, DP, BLOCK), dtype=tl.float64)
    g_sorted = tl.zeros((DP, DP, BLOCK), dtype=tl.float64)  # Pᵀ (QᵀGQ) P, rows still unsorted
    for i in tl.static_range(D):
        perm_i = _row(perm, rows, i)[None, :, :]
        q_sorted += _col(q, cols, i)[:, None, :] * perm_i
        g_sorted += _col(g, cols, i)[:, None, :] * perm_i
    floor = FLOOR_RTOL * _entry(s, idx, 0) + 1.0e-300
    s_safe = tl.maximum(s, floor[None, :])
    w0 = q_sorted / s_safe[None, :, :]  # U₀ = M w0

    # C = U₀ᵀU₀. Where every live matrix has σ_min ≥ WELL_CONDITIONED·σ_max it is read off the
    # rotated Gram (error ≈ ε₆₄ κ² ≤ 1e-10) and only the first D rows are visited, for H;
    # otherwise it is summed over U₀'s rows, exact where U₀ is.
    ratio = tl.where(live, _entry(s, idx, D - 1) / (_entry(s, idx, 0) + 1.0e-300), 1.0)
    from_rows = tl.min(ratio, axis=0) < WELL_CONDITIONED
    c = tl.zeros((DP, DP, BLOCK), dtype=tl.float64)
    h = tl.zeros((DP, DP, BLOCK), dtype=tl.float64)
    for v0 in range(0, V, R):
        if from_rows | (v0 < D):
            u0 = _times(_load_chunk(m_ptr, b, live, v0, V, D, DP, R), w0)
            c += _outer_sum(u0, u0)
            if v0 < D:
                h += _scatter_rows(u0, v0, DP, R)
    c_gram = tl.zeros((DP, DP, BLOCK), dtype=tl.float64)  # Pᵀ (QᵀGQ) P / (S Sᵀ)
    for i in tl.static_range(D):
        c_gram += _row(perm, rows, i)[:, None, :] * _row(g_sorted, rows, i)[None, :, :]
    scale = s_safe[:, None, :] * s_safe[None, :, :]  # 0 only where it underflows: dead lanes
    c = tl.where(from_rows, c, c_gram / tl.where(scale > 0.0, scale, 1.0))
    coef_a, coef_b = _orthonormal_coefficients(c, h, rows, cols, idx, D, DP, BLOCK)
    w = tl.zeros((DP, DP, BLOCK), dtype=tl.float64)  # U = M (w0 A) + E B
    for r in tl.static_range(D):
        w += _col(w0, cols, r)[:, None, :] * _row(coef_a, rows, r)[None, :, :]

    for v0 in range(0, V, R):
        u = _times(_load_chunk(m_ptr, b, live, v0, V, D, DP, R), w)
        if v0 < D:
            u += _gather_rows(coef_b, v0, DP, R)
        _store_chunk(u_ptr, u, b, live, v0, V, D, DP, R)
    vec_mask = live[None, :] & (idx < D)
    tl.store(s_ptr + b[None, :] * D + idx, s.to(s_ptr.dtype.element_ty), mask=vec_mask)
    # Vt[r, k] = Q_sorted[k, r]: tile axis 0 is k, axis 1 is r
    tl.store(
        vt_ptr + b[None, None, :] * (D * D) + cols * D + rows,
        q_sorted.to(vt_ptr.dtype.element_ty),
        mask=live[None, None, :] & (rows < D) & (cols < D),
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
    DP: tl.constexpr,
    BLOCK: tl.constexpr,
    R: tl.constexpr,
    FLOOR_RTOL: tl.constexpr,
):
    """∂L/∂M from (M, S, Vt) and the output gradients; the rule of the CPU backward."""
    b, live, rows, cols, idx = _program_tiles(n_matrices, D, DP, BLOCK)
    vec_mask = live[None, :] & (idx < D)
    small_mask = live[None, None, :] & (rows < D) & (cols < D)
    small = b[None, None, :] * (D * D)

    s = tl.load(s_ptr + b[None, :] * D + idx, mask=vec_mask, other=0.0).to(tl.float64)
    g_s = tl.load(gs_ptr + b[None, :] * D + idx, mask=vec_mask, other=0.0).to(tl.float64)
    q = tl.load(vt_ptr + small + cols * D + rows, mask=small_mask, other=0.0).to(tl.float64)
    q_t = tl.load(vt_ptr + small + rows * D + cols, mask=small_mask, other=0.0).to(tl.float64)
    g_vt_t = tl.load(gvt_ptr + small + cols * D + rows, mask=small_mask, other=0.0).to(tl.float64)

    floor = (FLOOR_RTOL * _entry(s, idx, 0) + floor_abs)[None, :]
    s_safe = tl.where(idx < D, tl.maximum(s, floor), 1.0)

    y = tl.zeros((DP, DP, BLOCK), dtype=tl.float64)  # Mᵀ (g_U / S)
    for v0 in range(0, V, R):
        x = _load_chunk(m_ptr, b, live, v0, V, D, DP, R)
        gx = _load_chunk(gu_ptr, b, live, v0, V, D, DP, R) / s_safe[None, :, :]
        y += _outer_sum(x, gx)
    g_q = g_vt_t + y
    g_s_total = g_s - tl.where(s > floor, tl.sum(q * y, axis=0) / s_safe, 0.0)
    g_lam = g_s_total / (2.0 * s_safe)

    lam = s * s
    lam_max = tl.maximum(_entry(lam, idx, 0), 2.2250738585072014e-308)[None, None, :]
    gap = (lam[None, :, :] - lam[:, None, :]) / lam_max  # gap[i, j] = (λj − λi) / λmax
    f = gap / (gap * gap + degeneracy_eps * degeneracy_eps) / lam_max

    x_qg = tl.zeros((DP, DP, BLOCK), dtype=tl.float64)  # Qᵀ g_Q and its transpose
    x_qg_t = tl.zeros((DP, DP, BLOCK), dtype=tl.float64)
    for k in tl.static_range(D):
        qk = _row(q, rows, k)
        gk = _row(g_q, rows, k)
        x_qg += qk[:, None, :] * gk[None, :, :]
        x_qg_t += gk[:, None, :] * qk[None, :, :]
    inner = f * (x_qg - x_qg_t) + tl.where(rows == cols, 2.0 * g_lam[None, :, :], 0.0)

    q_inner = tl.zeros((DP, DP, BLOCK), dtype=tl.float64)  # Q · inner
    for k in tl.static_range(D):
        q_inner += _col(q, cols, k)[:, None, :] * _row(inner, rows, k)[None, :, :]
    w = tl.zeros((DP, DP, BLOCK), dtype=tl.float64)  # Q · inner · Qᵀ
    for k in tl.static_range(D):
        w += _col(q_inner, cols, k)[:, None, :] * _col(q, cols, k)[None, :, :]

    for v0 in range(0, V, R):  # ∂L/∂M = (g_U / S) Qᵀ + M W, a chunk of rows at a time
        x = _load_chunk(m_ptr, b, live, v0, V, D, DP, R)
        gx = _load_chunk(gu_ptr, b, live, v0, V, D, DP, R) / s_safe[None, :, :]
        _store_chunk(gm_ptr, _times(gx, q_t) + _times(x, w), b, live, v0, V, D, DP, R)


class Launch(NamedTuple):
    """Launch shape of one kernel: ``block`` matrices per program on ``warps`` warps (so
    32·warps / block threads share a matrix), ``rows`` rows of M loaded per step as one
    (rows, dp, block) tile."""

    block: int
    warps: int
    rows: int


class KernelConfig(NamedTuple):
    """Launch shapes of the fused kernels for one D; dp is D padded to a power of two."""

    dp: int
    forward: Launch
    backward: Launch


def kernel_config(d: int) -> KernelConfig:
    """The launch shapes measured fastest on an H200 (2026-12-01, experiments/svd_tune.py,
    benchmarks/results/2026-12-01-h200/run5-tune.log): 48×4, 32×3 one thread per matrix; the
    padded D = 5…8 backward spills least with four threads per matrix, the D = 5 forward runs
    fastest with one, the D = 8 forward with four. D = 6, 7 were not measured."""
    dp = triton.next_power_of_2(d)
    if dp <= 4:
        return KernelConfig(dp, Launch(64, 2, 8), Launch(64, 2, 8))
    shared = Launch(8, 1, 4)
    return KernelConfig(dp, Launch(64, 2, 4) if d <= 5 else shared, shared)


def jacobi_sweeps(d: int) -> int:
    """Cyclic Jacobi sweeps run for D columns: float64 convergence with margin."""
    return 6 if d <= 4 else 8


def fused_svd_forward(
    m: torch.Tensor, floor_rtol: float, config: KernelConfig | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """M (B, V, D) contiguous → U (B, V, D) in M's dtype; S (B, D), Vt (B, D, D) in float32
    (float64 for float64 M). ``config`` overrides :func:`kernel_config`."""
    n, v, d = m.shape
    cfg = config or kernel_config(d)
    aux = torch.float64 if m.dtype == torch.float64 else torch.float32
    u = torch.empty_like(m)
    s = torch.empty((n, d), dtype=aux, device=m.device)
    vt = torch.empty((n, d, d), dtype=aux, device=m.device)
    fwd = cfg.forward
    gram_svd_forward_kernel[(triton.cdiv(n, fwd.block),)](
        m, u, s, vt, n,
        V=v, D=d, DP=cfg.dp, BLOCK=fwd.block, R=fwd.rows, SWEEPS=jacobi_sweeps(d),
        FLOOR_RTOL=floor_rtol, WELL_CONDITIONED=WELL_CONDITIONED, num_warps=fwd.warps,
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
    config: KernelConfig | None = None,
) -> torch.Tensor:
    """∂L/∂M (B, V, D) in M's dtype from the saved (M, S, Vt) and contiguous output grads."""
    n, v, d = m.shape
    cfg = config or kernel_config(d)
    g_m = torch.empty_like(m)
    bwd = cfg.backward
    gram_svd_backward_kernel[(triton.cdiv(n, bwd.block),)](
        m, s, vt, g_u, g_s, g_vt, g_m, n, floor_abs, degeneracy_eps,
        V=v, D=d, DP=cfg.dp, BLOCK=bwd.block, R=bwd.rows, FLOOR_RTOL=floor_rtol,
        num_warps=bwd.warps,
    )  # fmt: skip
    return g_m
