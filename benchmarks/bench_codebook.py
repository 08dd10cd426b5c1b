"""Codebook benchmarks: verified load, projective alignment, CLI start-up.

Each line times geolip against a named baseline in the same run and reports the ratio:
- load of a K=65,536, D=64 artifact with full verification (hashes, norms, signs) vs reading
  the same file and deserialising it with ``safetensors.torch.load`` (no checks);
- projective alignment of K=1,024, D=64 with unknown permutation, signs and rotation vs
  ``scipy.linalg.orthogonal_procrustes`` given the true pairs and signs;
- ``geolip --help`` vs a bare ``python -c pass`` interpreter start.

Usage: python benchmarks/bench_codebook.py [--repeats N]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load as load_bytes
from scipy.linalg import orthogonal_procrustes
from timing import median_seconds, write_section

from geolip import Codebook


def _rotation(d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))


def _goal(seconds: float, limit: float) -> str:
    verdict = "met" if seconds < limit else f"MISSED by {seconds / limit:.2f}×"
    return f"< {limit * 1e3:.0f} ms: {verdict}"


def bench_load(repeats: int) -> list[str]:
    g = torch.Generator().manual_seed(0)
    cb = Codebook.from_axes(torch.randn(65_536, 64, generator=g))
    with tempfile.TemporaryDirectory() as tmp:
        path = cb.save(Path(tmp) / "big")
        ours = median_seconds(lambda: Codebook.load(path), repeats)
        base = median_seconds(lambda: load_bytes(path.read_bytes()), repeats)
    return [
        "load K=65,536 D=64 (verified)",
        f"{ours * 1e3:.1f} ms",
        "read + safetensors load, no checks",
        f"{base * 1e3:.1f} ms",
        f"{ours / base:.2f}×",
        _goal(ours, 0.050),
    ]


def bench_align(repeats: int) -> list[str]:
    g = torch.Generator().manual_seed(1)
    a = Codebook.from_axes(torch.randn(1024, 64, generator=g))
    r = _rotation(64, 2)
    perm = torch.randperm(1024, generator=g)
    signs = torch.randint(0, 2, (1024, 1), generator=g) * 2 - 1
    moved = (a.axes.double() @ r.T)[perm] * signs
    b = Codebook.from_axes(moved)
    res = a.align(b, null_trials=0)
    # R and -R act identically on RP^(D-1): the error is to the nearer of the two
    err = min(torch.linalg.matrix_norm(res.rotation - s * r).item() for s in (1, -1))
    ours = median_seconds(lambda: a.align(b, null_trials=0), repeats)
    src = a.axes.double().numpy()
    inv = torch.argsort(perm)
    tgt = (
        b.axes.double()[inv]
        * torch.sign((a.axes.double() @ r.T * b.axes.double()[inv]).sum(1, keepdim=True))
    ).numpy()
    base = median_seconds(lambda: orthogonal_procrustes(src, tgt), repeats)
    return [
        f"align K=1,024 D=64, unknown pairs+signs (‖R̂−R‖={err:.1e})",
        f"{ours * 1e3:.1f} ms",
        "scipy orthogonal_procrustes, true pairs",
        f"{base * 1e3:.2f} ms",
        f"{ours / base:.1f}×",
        _goal(ours, 0.100),
    ]


def bench_help(repeats: int) -> list[str]:
    def run(args: list[str]) -> None:
        subprocess.run(args, check=True, capture_output=True)

    ours = median_seconds(lambda: run([sys.executable, "-m", "geolip.cli.app", "--help"]), repeats)
    base = median_seconds(lambda: run([sys.executable, "-c", "pass"]), repeats)
    return [
        "`geolip --help`",
        f"{ours * 1e3:.0f} ms",
        "`python -c pass`",
        f"{base * 1e3:.0f} ms",
        f"{ours / base:.1f}×",
        _goal(ours, 0.500),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    rows = [bench_load(args.repeats), bench_align(args.repeats), bench_help(args.repeats)]
    notes = (
        "Median of the repeats after one warm-up run. Ratios compare against the baseline timed in "
        "the same run. CPU timings on this 2-core machine swing widely between runs; read the "
        "ratios, not the seconds."
    )
    print(
        write_section(
            "codebook",
            "Codebook artifact (CPU)",
            ["task", "geolip", "baseline", "baseline time", "ratio", "goal"],
            rows,
            notes,
        )
    )


if __name__ == "__main__":
    main()
