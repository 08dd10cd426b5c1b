"""Codebook benchmarks: verified load, projective alignment, CLI start-up.

Each line times geolip against a named baseline in the same run and reports the ratio:
- load of a K=65,536, D=64 artifact with full verification (hashes, norms, signs) vs reading
  the same file and deserialising it with ``safetensors.torch.load`` (no checks);
- projective alignment of K=1,024, D=64 with unknown permutation, signs and rotation vs
  ``scipy.linalg.orthogonal_procrustes`` given the true pairs and signs;
- ``geolip --help`` vs a bare ``python -c pass`` interpreter start.

Threads are pinned (``--threads``, default 1): torch intra- and inter-op, the OpenMP and BLAS
pools of torch, numpy and scipy, and OMP/MKL/OPENBLAS_NUM_THREADS for the subprocesses. The
scipy baseline alone moves about tenfold with the thread count, so a ratio means something only
next to the thread count it was measured at.

Each task runs ``--rounds`` interleaved rounds of ``--repeats`` calls of geolip and of the
baseline (timing.compare); the headline is the median over rounds of the per-round ratio
geolip/baseline, with its range. Every time, the thread settings, the commit and the command go
to a raw JSON file under benchmarks/results/<UTC date>-cpu/, and the table to
docs/benchmarks.md (section ``codebook-threads<N>``).

Usage: python benchmarks/bench_codebook.py [--threads N] [--rounds R] [--repeats N]
       [--note TEXT] [--json PATH] [--no-doc]
       python benchmarks/bench_codebook.py --render RAW_JSON  (the doc section of a saved run)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from timing import (
    DEFAULT_THREADS,
    close_provenance,
    compare,
    display_path,
    export_thread_env,
    pin_threads,
    provenance,
    results_path,
    write_json,
    write_section,
)

export_thread_env()  # before torch, numpy and scipy load their thread pools

import torch  # noqa: E402
from safetensors.torch import load as load_bytes  # noqa: E402
from scipy.linalg import orthogonal_procrustes  # noqa: E402

from geolip import Codebook  # noqa: E402


def _rotation(d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))


def _goal(seconds: float, limit: float) -> str:
    verdict = "met" if seconds < limit else f"MISSED by {seconds / limit:.2f}×"
    return f"< {limit * 1e3:.0f} ms: {verdict}"


def bench_load(repeats: int, rounds: int) -> dict:
    g = torch.Generator().manual_seed(0)
    cb = Codebook.from_axes(torch.randn(65_536, 64, generator=g))
    with tempfile.TemporaryDirectory() as tmp:
        path = cb.save(Path(tmp) / "big")
        timing = compare(
            lambda: Codebook.load(path), lambda: load_bytes(path.read_bytes()), repeats, rounds
        )
    return {
        "task": "load K=65,536 D=64 (verified)",
        "baseline": "read + safetensors load, no checks",
        "goal_s": 0.050,
        **timing,
    }


def bench_align(repeats: int, rounds: int) -> dict:
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
    src = a.axes.double().numpy()
    inv = torch.argsort(perm)
    tgt = (
        b.axes.double()[inv]
        * torch.sign((a.axes.double() @ r.T * b.axes.double()[inv]).sum(1, keepdim=True))
    ).numpy()
    timing = compare(
        lambda: a.align(b, null_trials=0), lambda: orthogonal_procrustes(src, tgt), repeats, rounds
    )
    return {
        "task": f"align K=1,024 D=64, unknown pairs+signs (‖R̂−R‖={err:.1e})",
        "baseline": "scipy orthogonal_procrustes, true pairs",
        "goal_s": 0.100,
        "rotation_error": err,
        **timing,
    }


def bench_help(repeats: int, rounds: int) -> dict:
    def run(args: list[str]) -> None:
        subprocess.run(args, check=True, capture_output=True)

    timing = compare(
        lambda: run([sys.executable, "-m", "geolip.cli.app", "--help"]),
        lambda: run([sys.executable, "-c", "pass"]),
        repeats,
        rounds,
    )
    return {"task": "`geolip --help`", "baseline": "`python -c pass`", "goal_s": 0.500, **timing}


def _ms(seconds: float) -> str:
    ms = seconds * 1e3
    return f"{ms:.0f} ms" if ms >= 100 else f"{ms:.1f} ms" if ms >= 10 else f"{ms:.2f} ms"


def row(result: dict) -> list[str]:
    return [
        result["task"],
        f"**{result['ratio_median']:.2f}×** ({result['ratio_min']:.2f}–{result['ratio_max']:.2f})",
        _ms(result["ours_median_s"]),
        result["baseline"],
        _ms(result["base_median_s"]),
        _goal(result["ours_median_s"], result["goal_s"]),
    ]


def write_doc(data: dict, raw: str) -> str:
    """Write the doc section of one raw output (``data`` as saved in ``raw``); returns it."""
    prov, results = data["provenance"], data["results"]
    threads = prov["threads"]["requested"]
    rounds, repeats = results[0]["rounds"], results[0]["repeats"]
    notes = (
        "Ratio: geolip's time over the baseline's, timed in the same run; in bold the median over "
        f"{rounds} interleaved rounds (geolip and baseline alternate first) of the per-round "
        f"ratio of medians of {repeats} calls each, in brackets its range over the rounds. "
        "Times: median of the round medians, after one warm-up call of each. Goals compare that "
        "median time with the goal, on this machine at the load shown. Times on a shared machine "
        "swing from run to run; read the ratios, at the stated thread count."
    )
    return write_section(
        f"codebook-threads{threads}",
        f"Codebook artifact (CPU, {threads} thread{'s' if threads > 1 else ''})",
        ["task", "ratio (range)", "geolip", "baseline", "baseline time", "goal"],
        [row(r) for r in results],
        notes,
        prov=prov,
        raw=raw,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=DEFAULT_THREADS,
        help=f"threads for torch, OpenMP and BLAS (default {DEFAULT_THREADS})",
    )
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds (default 9)")
    parser.add_argument("--repeats", type=int, default=5, help="calls per round (default 5)")
    parser.add_argument("--note", default=None, help="a line about the machine, kept with the run")
    parser.add_argument("--json", default=None, help="raw output (default: a new file under "
                        "benchmarks/results/<UTC date>-cpu/)")  # fmt: skip
    parser.add_argument("--no-doc", action="store_true", help="leave docs/benchmarks.md alone")
    parser.add_argument(
        "--render",
        default=None,
        metavar="RAW_JSON",
        help="measure nothing: write the doc section of a saved raw output",
    )
    args = parser.parse_args()
    if args.render:
        print(write_doc(json.loads(Path(args.render).read_text()), display_path(args.render)))
        return
    pin_threads(args.threads)
    prov = provenance(device="cpu", note=args.note)
    results = [bench(args.repeats, args.rounds) for bench in (bench_load, bench_align, bench_help)]
    close_provenance(prov)  # end time, load average, and the threads still pinned
    path = Path(args.json) if args.json else results_path(f"codebook-threads{args.threads}")
    data = {"benchmark": "codebook", "provenance": prov, "results": results}
    raw = write_json(path, data)
    print(f"raw output: {raw}")
    if not args.no_doc:
        print(write_doc(data, raw))


if __name__ == "__main__":
    main()
