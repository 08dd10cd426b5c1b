"""Batched thin SVD on one GPU: geolip's fused kernels against cuSOLVER and the eigh route.

For each shape and batch size, in one run on one GPU: forward time (median of CUDA-event
timings, ``triton.testing.do_bench``), matrices/s, ratio to the memory floor (read M once, write
U, S, Vt once, at the device-to-device copy bandwidth measured in the same run), the ratio of
chunked gesvda to ours, and the error of each route on the timed batch (svd_paths.svd_errors).
Forward+backward is timed with ∂L/∂(U, S, Vt) given; its floor adds reading M, ∂U, S, Vt and
writing ∂M once.

Usage: python benchmarks/bench_svd.py [--quick] [--no-doc]
"""

from __future__ import annotations

import argparse
import json
import sys

import torch
import triton.testing
from svd_paths import ROUTES, svd_errors, unit_rows
from timing import close_provenance, display_path, provenance, write_section

CASES = [  # (V, D, batch sizes, routes)
    (48, 4, (16_384, 131_072, 1_048_576), ("fused", "eigh", "gesvda", "svd")),
    (32, 3, (131_072,), ("fused", "eigh", "gesvda")),
    (48, 5, (131_072,), ("fused", "eigh", "gesvda")),
    (64, 8, (131_072,), ("fused", "eigh", "gesvda")),
    (256, 8, (131_072,), ("fused", "eigh", "gesvda")),
    (256, 16, (16_384, 131_072), ("fused", "eigh", "gesvda")),
]
SLOW_DEFAULT_SVD_MAX = 16_384  # default torch.linalg.svd loops per matrix for V > 32


def copy_bandwidth() -> float:
    """Bytes/s of a large device-to-device copy, counting bytes read plus bytes written."""
    x = torch.empty(2**30, dtype=torch.float32, device="cuda").uniform_()
    y = torch.empty_like(x)
    ms = triton.testing.do_bench(lambda: y.copy_(x), warmup=50, rep=300, return_mode="median")
    return 2 * x.numel() * 4 / (ms * 1e-3)


def timed(fn, rep_ms: int = 300) -> float:
    return triton.testing.do_bench(fn, warmup=25, rep=rep_ms, return_mode="median")


def forward_backward(route, m: torch.Tensor, grads: tuple[torch.Tensor, ...]):
    def run() -> torch.Tensor:
        x = m.detach().requires_grad_(True)
        return torch.autograd.grad(route(x), x, grads)[0]

    return run


def bench_case(v: int, d: int, b: int, routes: tuple[str, ...], bw: float) -> list[dict]:
    m = unit_rows(b, v, d, seed=b + d)
    floor_fwd = b * (2 * v * d + d + d * d) * 4 / bw * 1e3
    floor_bwd = b * (3 * v * d + 2 * (d + d * d)) * 4 / bw * 1e3
    gen = torch.Generator(device="cuda").manual_seed(1)
    grads = tuple(
        torch.randn(shape, generator=gen, device="cuda") for shape in ((b, v, d), (b, d), (b, d, d))
    )
    out = []
    for name in routes:
        if name == "svd" and v > 32 and b > SLOW_DEFAULT_SVD_MAX:
            continue
        route = ROUTES[name]
        try:
            errors = svd_errors(m, *route(m))
            rep = 300 if name != "svd" else 1
            fwd = timed(lambda route=route: route(m), rep)
            fb = timed(forward_backward(route, m, grads), rep) if name != "svd" else float("nan")
        except RuntimeError as err:  # cuSOLVER refusals are results too
            out.append({"V": v, "D": d, "B": b, "route": name, "error": str(err)[:120]})
            continue
        out.append(
            {
                "V": v,
                "D": d,
                "B": b,
                "route": name,
                "forward_ms": fwd,
                "fwd_bwd_ms": fb,
                "matrices_per_s": b / (fwd * 1e-3),
                "floor_fwd_ms": floor_fwd,
                "floor_fwd_bwd_ms": floor_fwd + floor_bwd,
                **errors,
            }
        )
        print(json.dumps(out[-1]), flush=True)
        torch.cuda.empty_cache()
    return out


def rows_for_doc(results: list[dict]) -> list[list[str]]:
    by_key = {(r["V"], r["D"], r["B"], r["route"]): r for r in results}
    rows = []
    for r in results:
        key = (r["V"], r["D"], r["B"])
        label = f"{r['V']}×{r['D']}, B={r['B']:,}"
        if "error" in r:
            rows.append([label, r["route"], "failed: " + r["error"], *[""] * 6])
            continue
        ges = by_key.get((*key, "gesvda"))
        speed = f"{ges['forward_ms'] / r['forward_ms']:.1f}×" if ges and "forward_ms" in ges else ""
        rows.append(
            [
                label,
                r["route"],
                f"{r['forward_ms']:.3f}",
                f"{r['matrices_per_s'] / 1e6:.1f} M",
                f"{r['forward_ms'] / r['floor_fwd_ms']:.1f}×",
                f"{r['fwd_bwd_ms']:.3f} ({r['fwd_bwd_ms'] / r['floor_fwd_ms']:.1f}×)",
                speed,
                f"{r['reconstruction']:.1e} / {r['orthogonality_u']:.1e}",
                str(r["bad"]),
            ]
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="only 48×4 at B = 131,072")
    parser.add_argument("--no-doc", action="store_true")
    parser.add_argument("--json", default=None)
    parser.add_argument("--only", default=None, help="one shape, e.g. 256x16")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench_svd needs a CUDA GPU")
    prov = provenance(device=torch.cuda.get_device_name(0))
    bw = copy_bandwidth()
    print(f"copy bandwidth {bw / 1e12:.2f} TB/s", flush=True)
    cases = [(48, 4, (131_072,), ("fused", "eigh", "gesvda"))] if args.quick else CASES
    if args.only:
        v, d = (int(x) for x in args.only.split("x"))
        cases = [c for c in CASES if c[:2] == (v, d)]
    results = [r for v, d, bs, routes in cases for b in bs for r in bench_case(v, d, b, routes, bw)]
    if args.json:
        with open(args.json, "w") as f:
            data = {"provenance": close_provenance(prov), "copy_bandwidth": bw, "results": results}
            json.dump(data, f, indent=2)
    if args.no_doc:
        return
    notes = f"""
Forward: median of CUDA-event timings (`triton.testing.do_bench`, 25 ms warm-up, 300 ms of
repeats; default `torch.linalg.svd` once). "× floor": time over the memory floor, which reads M
once and writes U, S, Vt once at the device-to-device copy bandwidth measured in the same run
({bw / 1e12:.2f} TB/s, bytes read plus written). Forward+backward (∂L/∂U, ∂S, ∂Vt given) is
shown in ms and over the same forward floor. "vs gesvda": chunked gesvda's forward time over
this route's. Error on the timed batch: max ‖U S Vt − M‖/‖M‖ and max |UᵀU − I|, in float64;
"bad": non-finite outputs. Default `torch.linalg.svd` is run only at B ≤ 16,384 for V > 32
(it loops per matrix there).
"""
    section = write_section(
        "svd",
        "Batched thin SVD on the GPU",
        ["shape, batch", "route", "forward ms", "matrices/s", "× floor", "fwd+bwd ms (× floor)",
         "vs gesvda", "error rec / orth", "bad"],
        rows_for_doc(results),
        notes,
        prov=prov,
        raw=display_path(args.json) if args.json else None,
    )  # fmt: skip
    print(section)


if __name__ == "__main__":
    main()
