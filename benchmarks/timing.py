"""Shared timing and reporting for benchmark scripts: medians, ratios, docs/benchmarks.md.

Every run records where its numbers come from (``provenance``): date, commit (``-dirty`` when
the tree has uncommitted changes outside the benchmark outputs), exact command, machine,
library versions and thread settings. CPU benchmarks pin their thread pools with
``export_thread_env`` (before torch, numpy and scipy are imported) and ``pin_threads``.
This module imports nothing heavy at import time, so a script can import it first.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "benchmarks.md"
RESULTS = REPO / "benchmarks" / "results"
DEFAULT_THREADS = 1
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
OUTPUT_PATHS = ("benchmarks/results/", "docs/")  # written by benchmarks: not "dirty" code


def compare(
    ours: Callable[[], object],
    base: Callable[[], object],
    repeats: int,
    rounds: int,
    warmup: int = 1,
) -> dict[str, Any]:
    """Time ``ours`` against ``base`` in ``rounds`` interleaved rounds of ``repeats`` calls each.

    A round times both (their order alternates from round to round), so a slow spell on a shared
    machine hits both sides of that round's ratio. The ratio of a round is the median of its
    ``ours`` times over the median of its ``base`` times. Returned: every time in seconds, the
    ratio of every round, their median and range, and the median of each side's round medians.
    """
    for _ in range(warmup):
        ours()
        base()

    def sample(fn: Callable[[], object]) -> list[float]:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return times

    ours_s: list[list[float]] = []
    base_s: list[list[float]] = []
    for r in range(rounds):
        if r % 2 == 0:
            ours_s.append(sample(ours))
            base_s.append(sample(base))
        else:
            base_s.append(sample(base))
            ours_s.append(sample(ours))
    ours_med = [statistics.median(t) for t in ours_s]
    base_med = [statistics.median(t) for t in base_s]
    ratios = [o / b for o, b in zip(ours_med, base_med, strict=True)]
    return {
        "rounds": rounds,
        "repeats": repeats,
        "warmup": warmup,
        "ratio_median": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "ours_median_s": statistics.median(ours_med),
        "base_median_s": statistics.median(base_med),
        "ratio_per_round": ratios,
        "ours_s": ours_s,
        "base_s": base_s,
    }


def export_thread_env(default: int = DEFAULT_THREADS) -> int:
    """Read ``--threads N`` from the command line and export N as OMP/MKL/OPENBLAS_NUM_THREADS.

    Call it before torch, numpy or scipy is imported: their OpenMP and BLAS pools read these
    variables when they load, and subprocesses inherit them. ``pin_threads`` then enforces N.
    """
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--threads", type=int, default=default)
    threads = parser.parse_known_args()[0].threads
    if threads < 1:
        sys.exit(f"--threads must be at least 1, not {threads}")
    for var in THREAD_ENV:
        os.environ[var] = str(threads)
    return threads


_LIMITS: list[object] = []  # the threadpoolctl limiter stays referenced for the whole run
_PINNED: list[int] = []  # the thread count pin_threads set, if it ran


def pin_threads(threads: int) -> dict[str, Any]:
    """Pin torch (intra- and inter-op) and every loaded OpenMP/BLAS pool to ``threads``.

    numpy and scipy.linalg are imported first so that their BLAS libraries are loaded when the
    limits are applied. Returns ``thread_report()``; exits if a pool could not be pinned.
    """
    import numpy  # noqa: F401  (loads numpy's BLAS)
    import scipy.linalg  # noqa: F401  (loads scipy's BLAS)
    import torch
    from threadpoolctl import threadpool_limits

    for var in THREAD_ENV:
        os.environ[var] = str(threads)
    torch.set_num_threads(threads)
    if torch.get_num_interop_threads() != threads:
        try:
            torch.set_num_interop_threads(threads)
        except RuntimeError as err:  # only possible before any inter-op work has started
            print(f"inter-op threads left at {torch.get_num_interop_threads()}: {err}")
    _LIMITS.append(threadpool_limits(limits=threads))
    _PINNED.append(threads)
    report = thread_report()
    wrong = [p for p in report["pools"] if p["num_threads"] != threads]
    if report["torch_intra_op"] != threads or wrong:
        sys.exit(f"could not pin {threads} threads: {report}")
    return report


def thread_report() -> dict[str, Any]:
    """The thread counts in force: torch's, every loaded OpenMP/BLAS pool's, the env vars, and
    the count ``pin_threads`` pinned (``requested``; None if it did not run)."""
    import torch
    from threadpoolctl import threadpool_info

    return {
        "requested": _PINNED[-1] if _PINNED else None,  # None: not pinned
        "torch_intra_op": torch.get_num_threads(),
        "torch_inter_op": torch.get_num_interop_threads(),
        "pools": [
            {
                "api": info["internal_api"],
                "library": Path(info["filepath"]).name,
                "version": info.get("version"),
                "num_threads": info["num_threads"],
            }
            for info in threadpool_info()
        ],
        "env": {var: os.environ.get(var) for var in THREAD_ENV},
    }


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True)
    return done.stdout


def git_commit() -> tuple[str, list[str]]:
    """(``git rev-parse --short HEAD``, marked ``-dirty`` if needed; the dirty paths).

    A path is dirty if ``git status`` lists it (modified, staged or untracked), except the
    benchmark outputs under benchmarks/results/ and docs/. ``GEOLIP_BENCH_COMMIT`` in the
    environment names the commit instead, for a copy of the tree without its own git history.
    """
    named = os.environ.get("GEOLIP_BENCH_COMMIT")
    if named:  # a copy whose git metadata is not the tree's (a lent machine's copy)
        return f"{named} (named by the caller)", []
    try:
        sha = _git("rev-parse", "--short", "HEAD").strip()
        status = _git("status", "--porcelain").splitlines()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)", []
    dirty = [line[3:] for line in status if not line[3:].startswith(OUTPUT_PATHS)]
    return (sha + "-dirty" if dirty else sha), dirty


def command_line() -> str:
    """The command that is running, as it would be typed from the repository root."""
    if not Path(sys.argv[0]).is_file():  # python -c …, an interactive session
        return shlex.join(["python", *sys.argv])
    script = Path(sys.argv[0]).resolve()
    shown = script.relative_to(REPO).as_posix() if script.is_relative_to(REPO) else str(script)
    return shlex.join(["python", shown, *sys.argv[1:]])


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance(device: str = "cpu", note: str | None = None) -> dict[str, Any]:
    """Where a run's numbers come from, for its raw JSON and its section of the doc."""
    import numpy
    import scipy
    import torch

    commit, dirty = git_commit()
    now = datetime.datetime.now(datetime.timezone.utc)
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    return {
        "date": now.date().isoformat(),
        "time_utc": now.isoformat(timespec="seconds"),
        "commit": commit,
        "dirty_paths": dirty,
        "command": command_line(),
        "python_executable": sys.executable,
        "device": device,
        "machine": {
            "system": f"{platform.system()} {platform.release()} {platform.machine()}",
            "cpu": _cpu_model(),
            "cpu_count": os.cpu_count(),
            "cpus_usable": len(affinity) if affinity is not None else None,
            "load_average_1_5_15": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "note": note,
        },
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": numpy.__version__,
            "scipy": scipy.__version__,
        },
        "threads": thread_report(),
        "summary": machine(),
    }


def close_provenance(prov: dict[str, Any]) -> dict[str, Any]:
    """Add the end of the run to ``prov``: its time, the load average, the threads in force."""
    end = datetime.datetime.now(datetime.timezone.utc)
    prov["time_end_utc"] = end.isoformat(timespec="seconds")
    if hasattr(os, "getloadavg"):
        prov["machine"]["load_average_1_5_15_end"] = list(os.getloadavg())
    prov["threads_end"] = thread_report()
    return prov


def results_path(name: str, device: str = "cpu") -> Path:
    """A new file benchmarks/results/<UTC date>-<device>/<name>.json (-2, -3 … if taken)."""
    today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    folder = RESULTS / f"{today}-{device}"
    folder.mkdir(parents=True, exist_ok=True)
    path, n = folder / f"{name}.json", 1
    while path.exists():
        n += 1
        path = folder / f"{name}-{n}.json"
    return path


def write_json(path: Path, data: object) -> str:
    """Write ``data`` as indented JSON; returns the path as the doc cites it."""
    path.write_text(json.dumps(data, indent=2) + "\n")
    return display_path(path)


def display_path(path: str | Path) -> str:
    """A path relative to the repository root when it lies inside it."""
    p = Path(path).resolve()
    return p.relative_to(REPO).as_posix() if p.is_relative_to(REPO) else str(path)


def machine() -> str:
    """One line naming the machine the numbers come from (kept in ``provenance()["summary"]``)."""
    import numpy
    import scipy
    import torch

    gpu = triton = ""
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        gpu = f"{props.name} ({props.total_memory / 2**30:.0f} GiB, CUDA {torch.version.cuda}), "
        try:
            import triton as triton_module

            triton = f", Triton {triton_module.__version__}"
        except ImportError:
            pass
    return (
        f"{gpu}{platform.system()} {platform.machine()} ({_cpu_model()}), {os.cpu_count()} "
        f"cores, Python {platform.python_version()}, torch {torch.__version__}{triton}, "
        f"numpy {numpy.__version__}, scipy {scipy.__version__}, "
        f"torch threads {torch.get_num_threads()}"
    )


def _summary(prov: dict[str, Any]) -> str:
    """The machine line of a raw output saved without ``summary`` (a CPU run)."""
    m, v = prov["machine"], prov["versions"]
    return (
        f"{m['system']} ({m['cpu']}), {m['cpu_count']} cores, Python {v['python']}, torch "
        f"{v['torch']}, numpy {v['numpy']}, scipy {v['scipy']}, torch threads "
        f"{prov['threads']['torch_intra_op']}"
    )


def write_section(
    name: str,
    title: str,
    header: list[str],
    rows: list[list[str]],
    notes: str,
    *,
    prov: dict[str, Any] | None = None,
    raw: str | None = None,
) -> str:
    """Replace (or append) the section ``name`` of docs/benchmarks.md; returns its text.

    Its header names the machine, date, commit, command and raw output file (``raw``; "not
    kept" when None) from ``prov`` (``provenance()`` of this run when None), and the pinned
    threads when the run pinned them.
    """
    prov = provenance() if prov is None else prov
    threads = prov["threads"]
    commit = f"`{prov['commit']}`"
    if prov["dirty_paths"] and raw:
        commit += (
            f" (uncommitted changes in {len(prov['dirty_paths'])} paths, listed in the raw "
            "JSON as `dirty_paths`)"
        )
    elif prov["dirty_paths"]:
        commit += " (uncommitted changes in " + ", ".join(prov["dirty_paths"]) + ")"
    lines = [
        f"<!-- begin {name} -->",
        f"## {title}",
        "",
        f"- machine: {prov.get('summary') or _summary(prov)}",
    ]
    if prov["machine"].get("note"):
        lines.append(f"- note: {prov['machine']['note']}")
    if threads["requested"] is not None:
        pools = ", ".join(f"{p['api']} {p['num_threads']}" for p in threads["pools"])
        lines.append(
            f"- threads: {threads['requested']} (pinned: torch intra-op "
            f"{threads['torch_intra_op']}, inter-op {threads['torch_inter_op']}; {pools}; "
            + ", ".join(f"{k}={v}" for k, v in threads["env"].items())
            + ")"
        )
    load = prov["machine"].get("load_average_1_5_15")
    load_end = prov["machine"].get("load_average_1_5_15_end")
    if load is not None:
        shown = ", ".join(f"{x:.2f}" for x in load)
        if load_end is not None:
            shown += " at the start; " + ", ".join(f"{x:.2f}" for x in load_end) + " at the end"
        lines.append(f"- load average (1, 5, 15 min): {shown}")
    lines += [
        f"- date: {prov['time_utc']}",
        f"- commit: {commit}",
        f"- command: `{prov['command']}`",
        f"- raw output: `{raw}`" if raw else "- raw output: not kept (run without --json)",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(r) + " |" for r in rows),
        "",
        notes.strip(),
        f"<!-- end {name} -->",
    ]
    section = "\n".join(lines)
    text = (
        DOC.read_text()
        if DOC.exists()
        else "# Benchmarks\n\nSpeed is measured here, never asserted in tests.\n"
    )
    pattern = re.compile(rf"<!-- begin {name} -->.*?<!-- end {name} -->", re.S)
    text = (
        pattern.sub(lambda _: section, text)
        if pattern.search(text)
        else text.rstrip() + "\n\n" + section + "\n"
    )
    DOC.write_text(text)
    return section
