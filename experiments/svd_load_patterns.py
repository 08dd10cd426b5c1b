"""How the fused SVD kernels should walk the rows of M: four load patterns, timed on the GPU.

Each variant is the memory skeleton of the fused forward with one thread per matrix: pass 1
reads M (B, V, D) and accumulates G = MᵀM in float64; pass 2 reads M again and writes
U = M diag(G)^-1/2 (PASSES=2), or pass 1 only with G written (PASSES=1). The patterns:

- ``row``: a runtime loop over the V rows, one (D, BLOCK) load per row (the v2 kernels);
- ``row_unrolled``: the same loop fully unrolled (``tl.static_range``);
- ``chunk``: R rows at a time as one (R, D, BLOCK) tile (batch last);
- ``coalesced``: R rows at a time as a (BLOCK, R·D) tile, batch first, so that consecutive
  lanes read consecutive words, then reshaped and permuted to (R, D, BLOCK) (D a power of 2).

Prints ms, the ratio to a torch copy of the same bytes (the achievable floor) and registers and
spills of each compiled variant. Usage: ``python experiments/svd_load_patterns.py``.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from triton.testing import do_bench

MODES = {"row": 0, "row_unrolled": 1, "chunk": 2, "coalesced": 3}


@triton.jit
def _load_chunk(m_ptr, b, live, v0, V: tl.constexpr, D: tl.constexpr, DP: tl.constexpr,
                BLOCK: tl.constexpr, R: tl.constexpr, MODE: tl.constexpr):  # fmt: skip
    """Rows v0 … v0+R−1 of every matrix as an (R, DP, BLOCK) float64 tile (MODE 2 or 3)."""
    if MODE == 2:
        ridx = tl.arange(0, R)[:, None, None]
        didx = tl.arange(0, DP)[None, :, None]
        ptr = m_ptr + b[None, None, :] * (V * D) + (v0 + ridx) * D + didx
        mask = live[None, None, :] & (didx < D) & (v0 + ridx < V)
        x = tl.load(ptr, mask=mask, other=0.0)
    else:
        j = tl.arange(0, R * DP)[None, :]
        ptr = m_ptr + b[:, None] * (V * D) + v0 * D + j
        x = tl.load(ptr, mask=live[:, None] & (v0 * D + j < V * D), other=0.0)
        x = tl.permute(tl.reshape(x, (BLOCK, R, DP)), (1, 2, 0))
    return x.to(tl.float64)


@triton.jit
def _store_chunk(u_ptr, y, b, live, v0, V: tl.constexpr, D: tl.constexpr, DP: tl.constexpr,
                 BLOCK: tl.constexpr, R: tl.constexpr, MODE: tl.constexpr):  # fmt: skip
    y = y.to(u_ptr.dtype.element_ty)
    if MODE == 2:
        ridx = tl.arange(0, R)[:, None, None]
        didx = tl.arange(0, DP)[None, :, None]
        ptr = u_ptr + b[None, None, :] * (V * D) + (v0 + ridx) * D + didx
        tl.store(ptr, y, mask=live[None, None, :] & (didx < D) & (v0 + ridx < V))
    else:
        j = tl.arange(0, R * DP)[None, :]
        ptr = u_ptr + b[:, None] * (V * D) + v0 * D + j
        y = tl.reshape(tl.permute(y, (2, 0, 1)), (BLOCK, R * DP))
        tl.store(ptr, y, mask=live[:, None] & (v0 * D + j < V * D))


@triton.jit
def skeleton_kernel(m_ptr, u_ptr, g_ptr, n, V: tl.constexpr, D: tl.constexpr, DP: tl.constexpr,
                    BLOCK: tl.constexpr, R: tl.constexpr, MODE: tl.constexpr,
                    PASSES: tl.constexpr):  # fmt: skip
    b = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    live = b < n
    idx = tl.arange(0, DP)[:, None]
    rows = tl.arange(0, DP)[:, None, None]
    cols = tl.arange(0, DP)[None, :, None]
    row_mask = live[None, :] & (idx < D)
    g = tl.zeros((DP, DP, BLOCK), dtype=tl.float64)
    if MODE == 0:
        for v in range(V):
            x = tl.load(m_ptr + b[None, :] * (V * D) + v * D + idx, mask=row_mask, other=0.0)
            x = x.to(tl.float64)
            g += x[:, None, :] * x[None, :, :]
    elif MODE == 1:
        for v in tl.static_range(V):
            x = tl.load(m_ptr + b[None, :] * (V * D) + v * D + idx, mask=row_mask, other=0.0)
            x = x.to(tl.float64)
            g += x[:, None, :] * x[None, :, :]
    else:
        for v0 in range(0, V, R):
            x = _load_chunk(m_ptr, b, live, v0, V, D, DP, BLOCK, R, MODE)
            g += tl.sum(x[:, :, None, :] * x[:, None, :, :], axis=0)
    if PASSES == 1:
        tl.store(g_ptr + b[None, None, :] * (D * D) + rows * D + cols, g.to(tl.float32),
                 mask=live[None, None, :] & (rows < D) & (cols < D))  # fmt: skip
    else:
        scale = 1.0 / tl.sqrt(tl.maximum(tl.sum(tl.where(rows == cols, g, 0.0), axis=1), 1e-30))
        if MODE == 0:
            for v in range(V):
                off = b[None, :] * (V * D) + v * D + idx
                x = tl.load(m_ptr + off, mask=row_mask, other=0.0).to(tl.float64)
                tl.store(u_ptr + off, (x * scale).to(tl.float32), mask=row_mask)
        elif MODE == 1:
            for v in tl.static_range(V):
                off = b[None, :] * (V * D) + v * D + idx
                x = tl.load(m_ptr + off, mask=row_mask, other=0.0).to(tl.float64)
                tl.store(u_ptr + off, (x * scale).to(tl.float32), mask=row_mask)
        else:
            for v0 in range(0, V, R):
                x = _load_chunk(m_ptr, b, live, v0, V, D, DP, BLOCK, R, MODE)
                _store_chunk(u_ptr, x * scale[None, :, :], b, live, v0, V, D, DP, BLOCK, R, MODE)


def run_variant(m, mode, passes, r, block, warps):
    n, v, d = m.shape
    dp = triton.next_power_of_2(d)
    u = torch.empty_like(m)
    g = torch.empty((n, d, d), device=m.device)
    grid = (triton.cdiv(n, block),)

    def launch():
        return skeleton_kernel[grid](m, u, g, n, V=v, D=d, DP=dp, BLOCK=block, R=r,
                                     MODE=MODES[mode], PASSES=passes, num_warps=warps)  # fmt: skip

    compiled = launch()
    ms = do_bench(launch, warmup=10, rep=100)
    ref_scale = torch.linalg.vector_norm(m.double(), dim=1).clamp_min(1e-15).reciprocal()
    if passes == 2:
        err = (u.double() - m.double() * ref_scale[:, None, :]).abs().max().item()
    else:
        err = (g.double() - (m.double().mT @ m.double())).abs().max().item()
    return ms, err, compiled.n_regs, compiled.n_spills


def main() -> None:
    torch.manual_seed(0)
    print(torch.cuda.get_device_name(), "torch", torch.__version__, "triton", triton.__version__)
    for v, d in ((48, 4), (32, 3), (64, 8)):
        n = 1 << 20
        m = torch.nn.functional.normalize(torch.randn(n, v, d, device="cuda"), dim=-1)
        out = torch.empty_like(m)
        copy_ms = do_bench(lambda: out.copy_(m), warmup=10, rep=100)  # noqa: B023
        read_ms = do_bench(lambda: m.sum(), warmup=10, rep=100)  # noqa: B023
        gb = m.numel() * 4 / 1e9
        print(f"\n{v}x{d} B={n}: copy {copy_ms:.3f} ms ({2 * gb / copy_ms:.2f} TB/s), "
              f"read {read_ms:.3f} ms ({gb / read_ms:.2f} TB/s)")  # fmt: skip
        dp = triton.next_power_of_2(d)
        for passes in (1, 2):
            for mode in MODES:
                if mode == "coalesced" and dp != d:
                    continue
                rs = (8, 16) if mode in ("chunk", "coalesced") and d <= 4 else (4, 8) \
                    if mode in ("chunk", "coalesced") else (1,)  # fmt: skip
                for r in rs:
                    for block, warps in ((128, 4), (64, 2), (256, 8)):
                        try:
                            ms, err, regs, spills = run_variant(m, mode, passes, r, block, warps)
                        except Exception as exc:
                            print(f"  p{passes} {mode:13s} R={r:2d} BLOCK={block}: failed "
                                  f"{type(exc).__name__}: {str(exc)[:200]}")  # fmt: skip
                            continue
                        ref = read_ms if passes == 1 else read_ms + copy_ms
                        print(f"  p{passes} {mode:13s} R={r:2d} BLOCK={block:3d} w={warps}: "
                              f"{ms:.3f} ms = {ms / ref:.2f}x floor  err {err:.1e}  "
                              f"regs {regs} spills {spills}")  # fmt: skip


if __name__ == "__main__":
    main()
