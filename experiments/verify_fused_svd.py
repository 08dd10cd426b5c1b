"""GPU acceptance check of the fused SVD (issue 4): ≥ 1M random and adversarial matrices, and
gradients against float64 references.

Usage: python experiments/verify_fused_svd.py [--json OUT] [--shapes 48x4,64x8]

Forward, for D = 3, 4, 5, 8 (V = 256 too at D = 8) and 16 (V = 256): 1,048,576 random
unit-row matrices (262,144 at V = 256), and 65,536 of each adversarial family: near-equal
singular values (relative gaps 1e-3…1e-7), rank-deficient (rank 1…D−1, rows normalised),
repeated rows, scales 1e-30…1e-10 and 1e10…1e30, all-zero. Pass: max relative reconstruction
error < 1e-6, max |UᵀU − I| < 1e-6, no NaN.
Backward: ∂L/∂M of the fused path against the eigh path (CPU, float64 inputs and float32
inputs), and torch.autograd.gradcheck (finite differences, float64) of a gauge-invariant loss.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))
from svd_paths import svd_errors, unit_rows

from geolip.solvers.linalg import gram_svd

SHAPES = [(32, 3), (48, 4), (48, 5), (64, 8), (256, 8), (256, 16)]


def adversarial(v: int, d: int, n: int, seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator(device="cuda").manual_seed(seed)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen, device="cuda", dtype=torch.float64)

    q, _ = torch.linalg.qr(randn(n, v, d))
    w, _ = torch.linalg.qr(randn(n, d, d))
    sv = torch.linspace(2, 1, d, device="cuda", dtype=torch.float64).repeat(n, 1)
    gaps = 10.0 ** -torch.randint(3, 8, (n,), generator=gen, device="cuda")
    pair = torch.randint(0, d - 1, (n,), generator=gen, device="cuda")
    rows = torch.arange(n, device="cuda")
    sv[rows, pair + 1] = sv[rows, pair] * (1 - gaps)
    near_equal = ((q * sv.unsqueeze(-2)) @ w.mT).float()
    rank = torch.randint(1, d, (n,), generator=gen, device="cuda")
    keep = (torch.arange(d, device="cuda") < rank[:, None]).double()
    low = (randn(n, v, d) * keep.unsqueeze(-2)) @ w.mT
    deficient = torch.nn.functional.normalize(low, dim=-1).float()
    repeated = unit_rows(n, 1, d, seed).expand(n, v, d).contiguous()
    base = unit_rows(n, v, d, seed + 1)
    tiny = base * 10.0 ** -torch.randint(10, 31, (n, 1, 1), generator=gen, device="cuda")
    huge = base * 10.0 ** torch.randint(10, 31, (n, 1, 1), generator=gen, device="cuda")
    return {
        "near_equal": near_equal,
        "rank_deficient": deficient,
        "repeated_rows": repeated,
        "tiny_scale": tiny.float(),
        "huge_scale": huge.float(),
        "zero": torch.zeros(n, v, d, device="cuda"),
    }


def check_forward(shapes: list[tuple[int, int]]) -> list[dict]:
    results = []
    for v, d in shapes:
        n_random = 262_144 if v > 64 else 1_048_576
        sets = {"random": unit_rows(n_random, v, d, seed=d), **adversarial(v, d, 65_536, d)}
        for name, m in sets.items():
            e = svd_errors(m, *gram_svd(m, method="fused"))
            ok = e["reconstruction"] < 1e-6 and e["orthogonality_u"] < 1e-6 and e["bad"] == 0
            results.append({"V": v, "D": d, "set": name, "n": m.shape[0], **e, "pass": ok})
            print(json.dumps(results[-1]), flush=True)
            del m
        torch.cuda.empty_cache()
    return results


def gauge_invariant_loss(
    u: torch.Tensor, s: torch.Tensor, vt: torch.Tensor, w: list
) -> torch.Tensor:
    rec = (u * s.unsqueeze(-2)) @ vt
    gram = (vt.mT * s.unsqueeze(-2).square()) @ vt
    return (
        (rec * w[0]).sum()
        + (s * w[1]).sum()
        + 1e-2 * ((u @ u.mT) * w[2]).sum()
        + (gram * w[3]).sum()
    )


def grad(m: torch.Tensor, method: str, w: list) -> torch.Tensor:
    x = m.clone().requires_grad_(True)
    gauge_invariant_loss(*gram_svd(x, method=method), [t.to(m) for t in w]).backward()
    return x.grad


def check_backward(shapes: list[tuple[int, int]]) -> list[dict]:
    results = []
    for v, d in shapes:
        for dtype in (torch.float64, torch.float32):
            m = unit_rows(4096, v, d, seed=5).to(dtype)
            m[::7, 1] = m[::7, 0]  # repeated rows: equal singular values occur
            gen = torch.Generator(device="cuda").manual_seed(2)
            w = [torch.randn(s, generator=gen, device="cuda", dtype=dtype)
                 for s in ((4096, v, d), (4096, d), (4096, v, v), (4096, d, d))]  # fmt: skip
            fused = grad(m, "fused", w).double().cpu()
            cpu = grad(m.cpu(), "eigh", [t.cpu() for t in w]).double()
            rel = ((fused - cpu).norm() / cpu.norm()).item()
            results.append({"V": v, "D": d, "dtype": str(dtype), "rel_diff_vs_cpu": rel,
                            "finite": bool(torch.isfinite(fused).all())})  # fmt: skip
            print(json.dumps(results[-1]), flush=True)
        m = unit_rows(2, min(v, max(12, d)), d, seed=9).double().requires_grad_(True)

        def f(x: torch.Tensor) -> torch.Tensor:
            u, s, vt = gram_svd(x, method="fused")
            return (u * s.sqrt().unsqueeze(-2)) @ vt

        ok = torch.autograd.gradcheck(f, (m,), eps=1e-6, atol=1e-6, raise_exception=False)
        results.append({"V": m.shape[1], "D": d, "gradcheck": bool(ok)})
        print(json.dumps(results[-1]), flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--shapes", help="VxD,... (default: all of SHAPES)")
    args = parser.parse_args()
    shapes = SHAPES
    if args.shapes:
        shapes = [tuple(int(x) for x in shape.split("x")) for shape in args.shapes.split(",")]
    report = {"device": torch.cuda.get_device_name(), "torch": torch.__version__}
    report["forward"] = check_forward(shapes)
    report["backward"] = check_backward(shapes)
    failed = [r for r in report["forward"] if not r["pass"]]
    print(f"forward: {len(report['forward']) - len(failed)}/{len(report['forward'])} sets pass")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
