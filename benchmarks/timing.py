"""Shared timing and reporting for benchmark scripts: medians, ratios, docs/benchmarks.md."""

from __future__ import annotations

import datetime
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

DOC = Path(__file__).parent.parent / "docs" / "benchmarks.md"


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs after ``warmup`` untimed runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def machine() -> str:
    """One line naming the machine the numbers come from."""
    import torch

    cpu = platform.processor() or platform.machine()
    gpu = ""
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        gpu = f"{props.name} ({props.total_memory / 2**30:.0f} GiB, CUDA {torch.version.cuda}), "
    return (
        f"{gpu}{platform.system()} {platform.machine()} ({cpu}), {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, torch {torch.__version__}, "
        f"torch threads {torch.get_num_threads()}"
    )


def write_section(
    name: str, title: str, header: list[str], rows: list[list[str]], notes: str
) -> str:
    """Replace (or append) the section ``name`` of docs/benchmarks.md; returns its text."""
    today = datetime.date.today().isoformat()
    command = "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    lines = [
        f"<!-- begin {name} -->",
        f"## {title}",
        "",
        f"- machine: {machine()}",
        f"- date: {today}",
        f"- command: `{command}`",
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
