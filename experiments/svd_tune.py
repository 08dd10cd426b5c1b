"""Launch shapes of the fused SVD kernels, timed on the GPU: which ``KernelConfig`` per D.

Usage:
    python experiments/svd_tune.py --compile-only K/N   # compile shard K of N (Triton cache)
    python experiments/svd_tune.py [--json OUT]         # time every candidate
    (either takes --shapes 256x16,48x4 to restrict the shapes)

Compile the shards in parallel processes first (kernel compilation is CPU-bound and takes up to
a minute per variant), then time. For every (V, D) and candidate: forward and forward-free
backward ms (``triton.testing.do_bench``, median), registers and spills of the kernels, the
forward's errors on the timed batch (max ‖USVt − M‖/‖M‖, max |UᵀU − I|) and the backward's
relative difference to the float64 eigh path's on its first 4,096 matrices. Chunked gesvda is
timed on the same batch as the baseline.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from triton.testing import do_bench

sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))
from svd_paths import ROUTES, svd_errors, unit_rows

from geolip.solvers import _svd_triton as svd_triton
from geolip.solvers._svd_triton import KernelConfig as K
from geolip.solvers._svd_triton import Launch
from geolip.solvers.linalg import SINGULAR_FLOOR_RTOL, _degeneracy_eps, gram_svd


def _cfg(dp: int, fwd: tuple, bwd: tuple, robust: tuple | None = None) -> K:
    return K(dp, Launch(*fwd), Launch(*(robust or fwd)), Launch(*bwd))


# fast-forward and backward launch shapes (block, warps, rows); the robust kernel, which runs
# only on programs holding a flagged matrix, keeps the shape of run5-tune.log
CANDIDATES: dict[tuple[int, int], list[K]] = {
    (48, 4): [_cfg(4, (64, 2, 8), (64, 2, 8)), _cfg(4, (64, 2, 4), (64, 2, 4), (64, 2, 8)),
              _cfg(4, (128, 4, 8), (32, 1, 4), (64, 2, 8)),
              _cfg(4, (32, 1, 8), (128, 4, 4), (64, 2, 8)),
              _cfg(4, (128, 4, 4), (64, 2, 2), (64, 2, 8))],
    (32, 3): [_cfg(4, (64, 2, 8), (64, 2, 8)), _cfg(4, (64, 2, 4), (64, 2, 4), (64, 2, 8))],
    (48, 5): [_cfg(8, (64, 2, 4), (8, 1, 4), (8, 1, 4)), _cfg(8, (32, 1, 4), (16, 2, 4), (8, 1, 4)),
              _cfg(8, (64, 2, 2), (32, 2, 4), (8, 1, 4))],
    (64, 8): [_cfg(8, (8, 1, 4), (8, 1, 4)), _cfg(8, (16, 1, 4), (16, 2, 4), (8, 1, 4)),
              _cfg(8, (32, 1, 2), (32, 2, 2), (8, 1, 4))],
    (256, 16): [_cfg(16, (4, 1, 4), (2, 1, 4), (2, 1, 4)),
                _cfg(16, (2, 1, 8), (1, 1, 4), (2, 1, 4)),
                _cfg(16, (4, 1, 8), (4, 1, 4), (2, 1, 4)),
                _cfg(16, (4, 1, 2), (2, 1, 8), (2, 1, 4)),
                _cfg(16, (8, 1, 4), (2, 1, 2), (2, 1, 4)),
                _cfg(16, (8, 2, 4), (4, 1, 2), (2, 1, 4))],
}  # fmt: skip


def jobs(shapes: list[tuple[int, int]]) -> list[tuple[int, int, K]]:
    return [(v, d, cfg) for v, d in shapes for cfg in CANDIDATES[v, d]]


def backward(m: torch.Tensor, s, vt, grads, cfg: K | None) -> torch.Tensor:
    return svd_triton.fused_svd_backward(
        m, s, vt, *grads,
        floor_abs=torch.finfo(m.dtype).tiny ** 0.5, floor_rtol=SINGULAR_FLOOR_RTOL,
        degeneracy_eps=_degeneracy_eps(m.dtype), config=cfg,
    )  # fmt: skip


def compiled_kernels() -> dict[str, object]:
    out = {}
    for kernel in (svd_triton.gram_svd_forward_kernel, svd_triton.gram_svd_backward_kernel):
        for cache, *_ in kernel.device_caches.values():
            out.update({f"{kernel.fn.__name__}:{key}": k for key, k in cache.items()})
    return out


def run(v: int, d: int, cfg: K, n: int) -> dict:
    m = unit_rows(n, v, d, seed=d)
    before = set(compiled_kernels())
    u, s, vt = svd_triton.fused_svd_forward(m, SINGULAR_FLOOR_RTOL, cfg)
    gen = torch.Generator(device="cuda").manual_seed(1)
    grads = tuple(torch.randn(t.shape, generator=gen, device="cuda") for t in (u, s, vt))
    g_m = backward(m, s, vt, grads, cfg)
    new = {k: c for k, c in compiled_kernels().items() if k not in before}
    row = {"V": v, "D": d, "B": n, "config": [cfg.dp, *map(list, cfg[1:])]}
    for name, c in new.items():
        kind = "fwd" if name.startswith("gram_svd_forward") else "bwd"
        row.setdefault(f"{kind}_regs", []).append(c.n_regs)
        row.setdefault(f"{kind}_spills", []).append(c.n_spills)
    row["fwd_ms"] = do_bench(lambda: svd_triton.fused_svd_forward(m, SINGULAR_FLOOR_RTOL, cfg))
    row["bwd_ms"] = do_bench(lambda: backward(m, s, vt, grads, cfg))
    row.update(svd_errors(m, u, s, vt))
    row["flagged"] = (s[:, -1] <= svd_triton.WELL_CONDITIONED * s[:, 0]).float().mean().item()
    k = 4096
    # the reference in M's dtype: the degeneracy broadening of 1/(λj − λi) depends on it (at
    # float32 it moves the gradient of random 256×16 inputs by ~10 % against float64)
    x = m[:k].cpu().requires_grad_(True)
    ue, se, vte = gram_svd(x, method="eigh")
    # the same loss in eigh's gauge: flip the gradients of singular pairs whose sign differs
    sign = torch.sign((vte.detach().double() * vt[:k].double().cpu()).sum(-1)).to(m.dtype)
    g_u, g_s, g_vt = (g[:k].cpu() for g in grads)
    torch.autograd.backward((ue, se, vte), (g_u * sign[:, None], g_s, g_vt * sign[..., None]))
    ref = x.grad.double()
    row["bwd_rel_diff"] = ((g_m[:k].double().cpu() - ref).norm() / ref.norm()).item()
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--compile-only", help="K/N: compile shard K of N and exit")
    parser.add_argument("--json")
    parser.add_argument("--shapes", default=None, help="comma-separated VxD, e.g. 256x16")
    args = parser.parse_args()
    shapes = list(CANDIDATES)
    if args.shapes:
        shapes = [tuple(int(x) for x in s.split("x")) for s in args.shapes.split(",")]
    if args.compile_only:
        k, n = (int(x) for x in args.compile_only.split("/"))
        for v, d, cfg in jobs(shapes)[k::n]:
            m = unit_rows(3 * max(launch.block for launch in cfg[1:]), v, d, seed=0)
            u, s, vt = svd_triton.fused_svd_forward(m, SINGULAR_FLOOR_RTOL, cfg)
            backward(m, s, vt, (torch.ones_like(u), torch.ones_like(s), torch.ones_like(vt)), cfg)
            torch.cuda.synchronize()
        return
    rows = []
    for v, d, cfg in jobs(shapes):
        n = 1_048_576 if d <= 4 else 131_072
        try:
            rows.append(run(v, d, cfg, n))
        except Exception as exc:
            rows.append({"V": v, "D": d, "config": repr(cfg), "error": repr(exc)[:300]})
        print(json.dumps(rows[-1]), flush=True)
    for v, d in shapes:
        n = 1_048_576 if d <= 4 else 131_072
        m = unit_rows(n, v, d, seed=d)
        for route in ("gesvda", "eigh"):
            ms = do_bench(lambda: ROUTES[route](m), warmup=5, rep=100)  # noqa: B023
            rows.append({"V": v, "D": d, "B": n, "route": route, "fwd_ms": ms})
            print(json.dumps(rows[-1]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
