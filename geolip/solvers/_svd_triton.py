"""Fused thin SVD of small tall matrices on the GPU (Triton): two launches forward, one backward.

A program owns BLOCK matrices M (V, D), D ≤ 16, in (DP, DP, BLOCK) and (DP, BLOCK) tiles with the
batch last (DP: D padded to a power of two). With BLOCK = 32·warps one thread owns one matrix
and every D×D operation stays in its registers (the masked selects compile to register picks);
a smaller BLOCK spreads a matrix over several threads (``KernelConfig``). Rows of M are read and
written R at a time as one (R, DP, BLOCK) tile: a thread's R·D words are contiguous, which is
what lets these passes run at the memory floor (``experiments/svd_load_patterns.py``).
Forward, all in float64:

1. G = MᵀM (one pass over the rows), then its eigenvectors Q, by one of two methods:
   - D ≤ 5 (both kernels), and the robust kernel above D = 5: two-sided Jacobi sweeps on G
     accumulate Q, until no off-diagonal is left above JACOBI_TOL (at most ``jacobi_sweeps``).
     For D ≤ 8 the rotations are cyclic and unrolled. Above, a round rotates the DP/2
     disjoint planes (j, j ⊕ mask) at once, for mask = 1 … DP−1, in a runtime loop.
   - The fast kernel above D = 5: G = LLᵀ (Cholesky), then one-sided Jacobi on the columns of
     L, the same disjoint pairs per round, until no pair rotates. The columns end as √λ_j q_j.
     A thread holds whole columns, so a round exchanges one column per thread by warp shuffle
     (8.0 ms against 54 ms for the two-sided rounds at 256×16, B = 131,072, on an H200). A
     matrix still rotating after ONE_SIDED_MAX_SWEEPS is flagged like an ill-conditioned one;
2. sort eigenvalues descending (rank counting, no data-dependent branches), S = √λ;
3. fast kernel: for σ_min > WELL_CONDITIONED·σ_max, U = M Q S⁻¹ is orthonormal to ≈ ε₆₄κ²
   ≤ 1e-10 and is written in a second pass; other matrices (rank-deficient, zero) are flagged;
4. robust kernel, only in programs holding a flagged matrix (float64 M is flagged below the
   stricter WELL_CONDITIONED_FLOAT64):
   C = U₀ᵀU₀ and H = U₀[:D] summed over the rows of U₀ = M Q / max(S, floor); modified
   Gram–Schmidt, twice, in coefficient space with C as the inner product, so U = U₀ A + E B stays
   exact where U₀ is: columns of (near-)zero σ are replaced by the standard basis vector e_k
   (k ≤ j) farthest from the span of the previous columns (E B holds those); a last pass writes
   U. UᵀU = I for every input, rank-deficient and zero included.

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

WELL_CONDITIONED_FLOAT64 = 0.1
"""The same threshold for float64 M: U₀ = M Q S⁻¹ is then orthonormal to ≈ 100·ε₆₄ ≈ 1e-14,
within a few ulps of the robust kernel's."""


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
def _diagonal(vec, rows, cols):
    """The (DP, DP, BLOCK) tile with vec (DP, BLOCK) on its diagonal."""
    return tl.where(rows == cols, vec[None, :, :], 0.0)


@triton.jit
def _column_everywhere(a, k):
    """Column k of a (N, K, BLOCK) tile in every column: out[r, j] = a[r, k]. Where the launch
    spreads columns over threads, one gather (warp shuffles)."""
    return tl.gather(a, tl.full(a.shape, k, tl.int32), 1)


@triton.jit
def _gathered_product(a, b, rows, D: tl.constexpr):
    """A·B of (DP, DP, BLOCK) tiles, summed over k < D, for launch shapes that spread a
    matrix's columns over threads: column k of A reaches every thread by one gather (warp
    shuffles), row k of B is in each thread's registers."""
    out = tl.zeros_like(a)
    for k in tl.static_range(D):
        out += _column_everywhere(a, k) * _row(b, rows, k)[None, :, :]
    return out


@triton.jit
def _jacobi_rotation(g, q, rows, cols, idx, p, r):
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
def _jacobi_round(g, q, rows, cols, idx, mask):
    """The DP/2 disjoint Jacobi rotations in the planes (j, j ⊕ mask), applied at once: G ← JᵀGJ
    zeroes every G[j, j ⊕ mask]; Q ← QJ. Disjoint rotations commute, so each takes its angle
    from the same G; masks 1 … DP−1 rotate every pair once (mask = p ⊕ r). The gathers along
    the column axis are the exchange between the threads holding columns j and j ⊕ mask."""
    partner = cols ^ mask  # (1, DP, 1)
    diag = tl.sum(tl.where(rows == cols, g, 0.0), axis=0)  # (DP, BLOCK): G[j, j]
    off = tl.sum(tl.where(rows == partner, g, 0.0), axis=0)  # G[j ⊕ mask, j]
    swap = tl.broadcast_to(idx ^ mask, diag.shape)
    diag_partner = tl.gather(diag, swap, 0)
    first = idx < (idx ^ mask)  # j is p, the lower index of its plane (p, r)
    # both columns of a plane read G[p, r] (column r): G is symmetric only to rounding, and
    # the two must take the same angle for J to stay orthogonal
    off = tl.where(first, tl.gather(off, swap, 0), off)
    app = tl.where(first, diag, diag_partner)
    arr = tl.where(first, diag_partner, diag)
    nonzero = off != 0.0
    tau = (arr - app) / (2.0 * tl.where(nonzero, off, 1.0))
    t = tl.where(tau >= 0.0, 1.0, -1.0) / (tl.abs(tau) + tl.sqrt(1.0 + tau * tau))
    t = tl.where(nonzero, t, 0.0)
    c = 1.0 / tl.sqrt(1.0 + t * t)
    s = tl.where(first, -t, t) * c  # column j of GJ: c·G[:, j] + s·G[:, j ⊕ mask]
    across = tl.broadcast_to(partner, g.shape)
    g = c[None, :, :] * g + s[None, :, :] * tl.gather(g, across, 1)
    g = c[:, None, :] * g + s[:, None, :] * tl.gather(g, tl.broadcast_to(rows ^ mask, g.shape), 0)
    new_diag = tl.where(first, app - t * off, arr + t * off)
    g = tl.where(rows == partner, 0.0, tl.where(rows == cols, new_diag[None, :, :], g))
    q = c[None, :, :] * q + s[None, :, :] * tl.gather(q, across, 1)
    return g, q


@triton.jit
def _rotating(g, rows, cols, TOL: tl.constexpr):
    """Whether a sweep of two-sided Jacobi would still rotate some matrix of the program: an
    off-diagonal G[p, r]² > TOL²·G[p, p]·G[r, r] (the test of ``_hestenes_round``; a sweep
    past it changes Q by less than TOL). A NaN keeps the sweeps going to their cap."""
    diag = tl.sum(tl.where(rows == cols, g, 0.0), axis=0)  # (DP, BLOCK): G[j, j]
    settled = (g * g <= (TOL * TOL) * (diag[:, None, :] * diag[None, :, :])) | (rows == cols)
    return tl.min(tl.min(tl.min(settled.to(tl.int32), axis=0), axis=0), axis=0) == 0


@triton.jit
def _cholesky(g, rows, cols, DP: tl.constexpr):
    """L with G = LLᵀ (lower triangular, float64), right-looking and unpivoted: column k of the
    Schur complement reaches every thread by one gather. A non-positive pivot (G singular to
    rounding) gives a zero column; such matrices fail the conditioning test downstream."""
    chol = tl.zeros_like(g)
    for k in tl.static_range(DP):
        col = _column_everywhere(g, k)  # col[r, j] = S[r, k]
        pivot = tl.sum(tl.where(rows == k, col, 0.0), axis=0)  # S[k, k], (DP, BLOCK)
        inv = tl.where(pivot > 0.0, 1.0 / tl.sqrt(tl.where(pivot > 0.0, pivot, 1.0)), 0.0)
        lk = tl.where(rows >= k, col * inv[None, :, :], 0.0)  # L[r, k], in every column j
        lj = tl.sum(tl.where(rows == k, g, 0.0), axis=0) * inv  # L[j, k] = S[k, j] / √S[k, k]
        # the next Schur complement; row and column k are exactly zero, not rounding residue
        g = tl.where((rows <= k) | (cols <= k), 0.0, g - lk * lj[None, :, :])
        chol = tl.where(cols == k, lk, chol)
    return chol


@triton.jit
def _hestenes_round(a, cols, idx, mask, TOL: tl.constexpr):
    """One-sided Jacobi: the DP/2 disjoint rotations of the column pairs (j, j ⊕ mask) of A at
    once, each making its pair orthogonal; a pair already orthogonal to TOL is left alone. The
    only exchange between the threads holding columns j and j ⊕ mask is that pair's columns (a
    warp shuffle). Both threads of a pair compute the angle from the same numbers in the same
    order, so they agree bit for bit. → (A, whether this thread's pair was rotated)."""
    other = tl.gather(a, tl.broadcast_to(cols ^ mask, a.shape), 1)
    own = tl.sum(a * a, axis=0)  # (DP, BLOCK): ‖a_j‖²
    theirs = tl.sum(other * other, axis=0)
    cross = tl.sum(a * other, axis=0)
    first = idx < (idx ^ mask)  # j is p, the lower index of its pair (p, r)
    diff = tl.where(first, theirs - own, own - theirs)  # ‖a_r‖² − ‖a_p‖²
    rotate = cross * cross > (TOL * TOL) * (own * theirs)
    # t = tan θ, the smaller root of t² + 2ζt − 1 = 0 with ζ = diff / (2·cross)
    t = tl.where(diff >= 0.0, 2.0 * cross, -2.0 * cross) / (
        tl.abs(diff) + tl.sqrt(diff * diff + 4.0 * cross * cross)
    )
    t = tl.where(rotate, t, 0.0)
    c = tl.math.rsqrt(1.0 + t * t)
    s = tl.where(first, -t, t) * c  # a_p ← c·a_p − s·a_r, a_r ← s·a_p + c·a_r
    return c[None, :, :] * a + s[None, :, :] * other, rotate


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
    for j in range(D):  # runtime loops: the robust kernel runs rarely, compiles fast
        a = tl.where(idx == j, 1.0, 0.0) + tl.zeros((DP, BLOCK), dtype=tl.float64)
        b = tl.zeros((DP, BLOCK), dtype=tl.float64)
        cand_a = tl.zeros((DP, BLOCK), dtype=tl.float64)
        covered = tl.zeros((DP, BLOCK), dtype=tl.float64)
        for i in range(j):  # ⟨u_i, e_k⟩ = (H a_i)_k + (b_i)_k
            proj = tl.sum(h * _col(coef_a, cols, i)[None, :, :], axis=1) + _col(coef_b, cols, i)
            covered += proj * proj
        # of e_0..e_j one is at squared distance ≥ 1/(j+1) from span(u_0..u_{j-1})
        covered = tl.where(idx <= j, covered, 2.0)
        k = tl.argmin(covered, axis=0)
        cand_b = tl.where(idx == k[None, :], 1.0, 0.0).to(tl.float64)
        for _ in tl.static_range(2):
            for i in range(j):
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
def _sorted_eigen_of_gram(m_ptr, b, live, rows, cols, idx, V: tl.constexpr, D: tl.constexpr,
                          DP: tl.constexpr, BLOCK: tl.constexpr, R: tl.constexpr,
                          SWEEPS: tl.constexpr, ONE_SIDED: tl.constexpr,
                          TOL: tl.constexpr):  # fmt: skip
    """G = MᵀM in float64, its eigendecomposition, sort → S (DP, BLOCK) descending (0 past D),
    the eigenvectors Q (DP, DP, BLOCK), column r belonging to S[r], and whether a matrix's
    sweeps ran out before it converged (BLOCK,). ``ONE_SIDED`` (D > 8 only): G = LLᵀ, then
    one-sided Jacobi on the columns of L until no pair is rotated (at most SWEEPS sweeps); the
    columns end as √λ_j q_j. Otherwise two-sided Jacobi on G for SWEEPS sweeps."""
    g = tl.zeros((DP, DP, BLOCK), dtype=tl.float64)
    for v0 in range(0, V, R):
        x = _load_chunk(m_ptr, b, live, v0, V, D, DP, R)
        g += _outer_sum(x, x)
    unsettled = tl.zeros((DP, BLOCK), dtype=tl.int32)
    if ONE_SIDED:
        a = _cholesky(g, rows, cols, DP)
        unsettled += 1
        sweep = 0
        while (sweep < SWEEPS) & (tl.max(tl.max(unsettled, axis=0), axis=0) > 0):
            unsettled = tl.zeros((DP, BLOCK), dtype=tl.int32)
            for mask in range(1, DP):
                a, rotated = _hestenes_round(a, cols, idx, mask, TOL)
                unsettled = tl.maximum(unsettled, rotated.to(tl.int32))
            sweep += 1
        lam = tl.sum(a * a, axis=0)  # (DP, BLOCK), index j
        norm = tl.sqrt(lam)
        q = a / tl.where(norm > 0.0, norm, 1.0)[None, :, :]
    else:
        q = tl.where(rows == cols, 1.0, 0.0) + tl.zeros_like(g)
        sweep = 0
        while (sweep < SWEEPS) & _rotating(g, rows, cols, TOL):
            if D <= 8:  # unrolled: the selects of a rotation become register picks
                for p in tl.static_range(D - 1):
                    for r in tl.static_range(p + 1, D):
                        g, q = _jacobi_rotation(g, q, rows, cols, idx, p, r)
            else:  # parallel: DP/2 disjoint rotations per round, DP − 1 rounds per sweep
                for mask in range(1, DP):
                    g, q = _jacobi_round(g, q, rows, cols, idx, mask)
            sweep += 1
        lam = tl.sum(tl.where(rows == cols, g, 0.0), axis=1)  # (DP, BLOCK), index i

    # sort descending: rank_i = #{j : λj > λi or (λj = λi and j < i)}; padding ranks last
    lam = tl.where(idx < D, lam, -1.0e300)
    before = (lam[None, :, :] > lam[:, None, :]) | (
        (lam[None, :, :] == lam[:, None, :]) & (cols < rows)
    )
    rank = tl.sum(before.to(tl.int32), axis=1)  # (DP, BLOCK), index i
    perm = tl.where(rank[:, None, :] == cols, 1.0, 0.0)  # perm[i, r] = [rank_i = r]
    s = tl.sqrt(tl.maximum(tl.sum(perm * lam[:, None, :], axis=0), 0.0))  # (DP, BLOCK), index r
    if ONE_SIDED:  # a matrix's columns sit on different threads: move them by one gather
        source = tl.sum(tl.where(rank[:, None, :] == cols, rows, 0), axis=0)  # i with rank_i = r
        q_sorted = tl.gather(q, tl.broadcast_to(source[None, :, :], q.shape), 1)
    else:
        q_sorted = tl.zeros_like(g)
        for i in tl.static_range(D):
            q_sorted += _col(q, cols, i)[:, None, :] * _row(perm, rows, i)[None, :, :]
    return s, q_sorted, tl.max(unsettled, axis=0) > 0


@triton.jit
def gram_svd_forward_kernel(
    m_ptr,
    u_ptr,
    s_ptr,
    vt_ptr,
    ill_ptr,
    n_matrices,
    V: tl.constexpr,
    D: tl.constexpr,
    DP: tl.constexpr,
    BLOCK: tl.constexpr,
    R: tl.constexpr,
    SWEEPS: tl.constexpr,
    ONE_SIDED: tl.constexpr,
    TOL: tl.constexpr,
    FLOOR_RTOL: tl.constexpr,
    WELL_CONDITIONED: tl.constexpr,
    ROBUST: tl.constexpr,
    ONLY_FLAGGED: tl.constexpr,
):
    """M (B, V, D) → U (B, V, D), S (B, D) descending, Vt (B, D, D); see the module doc.

    ``ROBUST=False`` (fast): U = M Q / S for the matrices with σ_min > WELL_CONDITIONED·σ_max
    whose Jacobi sweeps settled (``ONE_SIDED`` runs until they do, at most SWEEPS); the others
    are flagged in ``ill_ptr`` (int8, B) and left unwritten. ``ROBUST=True``: the
    re-orthonormalised U of step 3, for the flagged matrices (``ONLY_FLAGGED``) or all of them;
    a program holding none returns after reading the flags.
    """
    b, live, rows, cols, idx = _program_tiles(n_matrices, D, DP, BLOCK)
    if ROBUST and ONLY_FLAGGED:
        live = live & (tl.load(ill_ptr + b, mask=live, other=0) != 0)
    if tl.max(live.to(tl.int32), axis=0) > 0:
        s, q_sorted, unsettled = _sorted_eigen_of_gram(
            m_ptr, b, live, rows, cols, idx, V, D, DP, BLOCK, R, SWEEPS, ONE_SIDED, TOL
        )
        floor = FLOOR_RTOL * _entry(s, idx, 0) + 1.0e-300
        s_safe = tl.maximum(s, floor[None, :])
        w = q_sorted / s_safe[None, :, :]  # U₀ = M w
        if ROBUST:
            w, coef_b = _robust_coefficients(m_ptr, b, live, w, rows, cols, idx, V, D, DP, BLOCK,
                                             R)  # fmt: skip
        else:
            # M = 0 too; written so that a NaN would count as ill
            well = _entry(s, idx, D - 1) > WELL_CONDITIONED * _entry(s, idx, 0)
            ill = ~well | unsettled
            tl.store(ill_ptr + b, ill.to(tl.int8), mask=live)
            live = live & ~ill
        for v0 in range(0, V, R):
            u = _times(_load_chunk(m_ptr, b, live, v0, V, D, DP, R), w)
            if ROBUST:  # noqa: SIM102 (a compile-time branch around a runtime one)
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
def _robust_coefficients(m_ptr, b, live, w0, rows, cols, idx, V: tl.constexpr, D: tl.constexpr,
                         DP: tl.constexpr, BLOCK: tl.constexpr, R: tl.constexpr):  # fmt: skip
    """Step 3 for U₀ = M w0: C = U₀ᵀU₀ and H = U₀[:D] summed over the rows, Gram–Schmidt in
    coefficient space → (W, B) with U = M W + E B orthonormal."""
    c = tl.zeros_like(w0)
    h = tl.zeros_like(w0)
    for v0 in range(0, V, R):
        u0 = _times(_load_chunk(m_ptr, b, live, v0, V, D, DP, R), w0)
        c += _outer_sum(u0, u0)
        if v0 < D:
            h += _scatter_rows(u0, v0, DP, R)
    coef_a, coef_b = _orthonormal_coefficients(c, h, rows, cols, idx, D, DP, BLOCK)
    w = tl.zeros_like(w0)  # U = M (w0 A) + E B
    for r in tl.static_range(D):
        w += _col(w0, cols, r)[:, None, :] * _row(coef_a, rows, r)[None, :, :]
    return w, coef_b


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
    SPREAD: tl.constexpr,
):
    """∂L/∂M from (M, S, Vt) and the output gradients; the rule of the CPU backward.
    ``SPREAD``: the launch gives a matrix several threads (its columns on different threads)."""
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

    y = tl.zeros((DP, DP, BLOCK), dtype=tl.float64)  # Mᵀ g_U, then Mᵀ (g_U / S)
    for v0 in range(0, V, R):
        x = _load_chunk(m_ptr, b, live, v0, V, D, DP, R)
        y += _outer_sum(x, _load_chunk(gu_ptr, b, live, v0, V, D, DP, R))
    y = y / s_safe[None, :, :]
    g_q = g_vt_t + y
    g_s_total = g_s - tl.where(s > floor, tl.sum(q * y, axis=0) / s_safe, 0.0)
    g_lam = g_s_total / (2.0 * s_safe)

    lam = s * s
    lam_max = tl.maximum(_entry(lam, idx, 0), 2.2250738585072014e-308)[None, None, :]
    gap = (lam[None, :, :] - lam[:, None, :]) / lam_max  # gap[i, j] = (λj − λi) / λmax
    f = gap / (gap * gap + degeneracy_eps * degeneracy_eps) / lam_max

    # W = Q · inner · Qᵀ with inner = f ∘ (X − Xᵀ) + 2 diag(g_λ), X = Qᵀ g_Q
    if SPREAD:  # a matrix's columns on different threads: gathers, and one transpose of X
        x_mat = _gathered_product(q_t, g_q, rows, D)
        inner = f * (x_mat - tl.permute(x_mat, (1, 0, 2))) + _diagonal(2.0 * g_lam, rows, cols)
        w = _gathered_product(_gathered_product(q, inner, rows, D), q_t, rows, D)
    else:  # a thread holds whole matrices: register picks, no transpose
        antisym = tl.zeros((DP, DP, BLOCK), dtype=tl.float64)
        for k in tl.static_range(D):
            qk = _row(q, rows, k)
            gk = _row(g_q, rows, k)
            antisym += qk[:, None, :] * gk[None, :, :] - gk[:, None, :] * qk[None, :, :]
        inner = f * antisym + _diagonal(2.0 * g_lam, rows, cols)
        q_inner = tl.zeros((DP, DP, BLOCK), dtype=tl.float64)
        for k in tl.static_range(D):
            q_inner += _col(q, cols, k)[:, None, :] * _row(inner, rows, k)[None, :, :]
        w = tl.zeros((DP, DP, BLOCK), dtype=tl.float64)
        for k in tl.static_range(D):
            w += _col(q_inner, cols, k)[:, None, :] * _col(q, cols, k)[None, :, :]
    # ∂L/∂M = g_U S⁻¹ Qᵀ + M W, a chunk of rows at a time, in M's precision: no cancellation
    # beyond that of the sum of two products, so the rows need no float64
    row_type: tl.constexpr = gm_ptr.dtype.element_ty
    q_t = (q_t / s_safe[:, None, :]).to(row_type)  # S⁻¹ Qᵀ
    w = w.to(row_type)
    for v0 in range(0, V, R):
        offsets, mask = _chunk_offsets(b, live, v0, V, D, DP, R)
        x = tl.load(m_ptr + offsets, mask=mask, other=0.0).to(row_type)
        g_u = tl.load(gu_ptr + offsets, mask=mask, other=0.0).to(row_type)
        tl.store(gm_ptr + offsets, _times(g_u, q_t) + _times(x, w), mask=mask)


class Launch(NamedTuple):
    """Launch shape of one kernel: ``block`` matrices per program on ``warps`` warps (so
    32·warps / block threads share a matrix), ``rows`` rows of M loaded per step as one
    (rows, dp, block) tile."""

    block: int
    warps: int
    rows: int

    @property
    def spread(self) -> bool:
        """Whether a matrix spreads over several threads."""
        return self.block < 32 * self.warps


class KernelConfig(NamedTuple):
    """Launch shapes of the fused kernels for one D; dp is D padded to a power of two."""

    dp: int
    forward: Launch
    robust: Launch
    backward: Launch


def kernel_config(d: int) -> KernelConfig:
    """The launch shapes measured fastest on an H200 (experiments/svd_tune.py; D ≤ 4:
    2026-12-02, benchmarks/results/2026-12-02-h200/run7-tune.log; D = 5…8: 2026-12-06,
    benchmarks/results/2026-12-06-h200/run5-svd-variants.json; D = 16: 2026-12-03,
    benchmarks/results/2026-12-03-h200/). D ≤ 4: one thread per matrix, 8-row tiles (4-row
    tiles for the D = 3 forward). D = 5: the two-sided fast forward, one thread per matrix,
    4-row tiles (it spills, but takes 0.46 ms at 48×5, B = 131,072, against 0.82 for the
    one-sided kernel, which does not). D = 6…8: the one-sided fast forward, 8 threads per
    matrix, 8-row tiles (64×8: 0.81 ms against 2.19 with 8 matrices on 2 warps). D = 5…8:
    the backward 8 threads per matrix, 4-row tiles (64×8: 0.89 ms against 0.99 with 8
    matrices on 2 warps), the robust forward four threads per matrix. D = 9…16: 32 threads
    hold 4 matrices (forward, 8-row tiles) or 2 (backward, 8-row tiles; robust forward, 4-row
    tiles), one column per thread; at 256×16, B = 131,072, forward 8.1 ms against 8.6 with
    4-row tiles and 9.6 with 2 matrices a warp, backward 11.0 ms against 12.3 with 4 matrices
    a warp. D = 6, 7 were not measured and take D = 8's shapes."""
    dp = triton.next_power_of_2(d)
    if dp <= 4:
        one = Launch(64, 2, 8)
        return KernelConfig(dp, Launch(64, 2, 4) if d <= 3 else one, one, one)
    if dp == 16:
        return KernelConfig(dp, Launch(4, 1, 8), Launch(2, 1, 4), Launch(2, 1, 8))
    forward = Launch(64, 2, 4) if d <= ONE_SIDED_ABOVE else Launch(4, 1, 8)
    return KernelConfig(dp, forward, Launch(8, 1, 4), Launch(4, 1, 4))


def jacobi_sweeps(d: int) -> int:
    """Two-sided Jacobi sweeps run for D columns: float64 convergence with margin."""
    return 6 if d <= 4 else 8


ONE_SIDED_MAX_SWEEPS = 12
"""Sweeps after which the one-sided Jacobi of the fast D > 8 kernel gives up on a matrix and
flags it for the robust kernel. Random 256×16 matrices settle after 8 (the last one rotating
nothing); spectra spread over 10⁻³ after 7–8 (float64 simulation, 300 matrices each)."""

JACOBI_TOL = 1e-14
"""A column pair with |⟨a_p, a_r⟩| ≤ JACOBI_TOL·‖a_p‖‖a_r‖ counts as orthogonal (one-sided);
two-sided sweeps stop once every |G[p, r]| ≤ JACOBI_TOL·√(G[p, p]·G[r, r])."""

ONE_SIDED_ABOVE = 5
"""The fast forward takes the one-sided Jacobi above this D (its columns spread over threads);
at and below it, unrolled two-sided sweeps with a whole matrix in one thread (at D = 5 the
faster of the two although it spills; kernel_config)."""


def forward_constants(
    v: int,
    d: int,
    launch: Launch,
    floor_rtol: float,
    robust: bool,
    well_conditioned: float = WELL_CONDITIONED,
) -> dict:
    """Compile-time arguments of ``gram_svd_forward_kernel`` (but ONLY_FLAGGED): the fast
    kernel takes the one-sided Jacobi above D = ONE_SIDED_ABOVE, the robust one the two-sided
    sweeps; ``well_conditioned`` is the fast kernel's σ_min/σ_max threshold."""
    one_sided = d > ONE_SIDED_ABOVE and not robust
    return {
        "V": v, "D": d, "DP": triton.next_power_of_2(d), "BLOCK": launch.block, "R": launch.rows,
        "SWEEPS": ONE_SIDED_MAX_SWEEPS if one_sided else jacobi_sweeps(d),
        "ONE_SIDED": one_sided, "TOL": JACOBI_TOL, "FLOOR_RTOL": floor_rtol,
        "WELL_CONDITIONED": well_conditioned, "ROBUST": robust,
    }  # fmt: skip


def launch_forward(
    m: torch.Tensor,
    outputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    floor_rtol: float,
    launch: Launch,
    robust: bool,
    only_flagged: bool,
) -> None:
    """One launch of ``gram_svd_forward_kernel`` over all of M (B, V, D) into preallocated
    (U, S, Vt, ill flags); the fast kernel (``robust=False``) writes the flags, the robust one
    with ``only_flagged`` reads them. Float64 M takes the fast route only for σ_min/σ_max >
    WELL_CONDITIONED_FLOAT64."""
    n, v, d = m.shape
    well = WELL_CONDITIONED_FLOAT64 if m.dtype == torch.float64 else WELL_CONDITIONED
    constants = forward_constants(v, d, launch, floor_rtol, robust, well)
    gram_svd_forward_kernel[(triton.cdiv(n, launch.block),)](
        m, *outputs, n, **constants, ONLY_FLAGGED=only_flagged, num_warps=launch.warps
    )


def fused_svd_forward(
    m: torch.Tensor, floor_rtol: float, config: KernelConfig | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """M (B, V, D) contiguous → U (B, V, D) in M's dtype; S (B, D), Vt (B, D, D) in float32
    (float64 for float64 M). ``config`` overrides :func:`kernel_config`.

    Two launches: the fast kernel, then the robust one, which returns at once in programs
    holding no matrix the fast kernel flagged. The fast kernel's U₀ is orthonormal to
    ≈ ε₆₄κ², so float64 M takes it only for κ < 1/WELL_CONDITIONED_FLOAT64.
    """
    n, _, d = m.shape
    cfg = config or kernel_config(d)
    exact = m.dtype == torch.float64
    aux = torch.float64 if exact else torch.float32
    outputs = (
        torch.empty_like(m),
        torch.empty((n, d), dtype=aux, device=m.device),
        torch.empty((n, d, d), dtype=aux, device=m.device),
        torch.empty(n, dtype=torch.int8, device=m.device),
    )
    launch_forward(m, outputs, floor_rtol, cfg.forward, robust=False, only_flagged=False)
    launch_forward(m, outputs, floor_rtol, cfg.robust, robust=True, only_flagged=True)
    return outputs[:3]


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
        SPREAD=bwd.spread, num_warps=bwd.warps,
    )  # fmt: skip
    return g_m
