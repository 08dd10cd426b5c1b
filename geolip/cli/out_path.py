"""Where a command writes: nothing is overwritten unless the user says so.

Every command that writes calls :func:`claim_output` right after parsing, before any work. An
existing output (a file, or a folder with anything in it) is refused with exit code 2 and one
line naming the path and the flag that allows it (``--force``; training also ``--resume``).
A path of the wrong kind — an existing file where a folder is written, or a folder where a
file is written — is refused the same way, ``--force`` or not. Under ``--json`` the refusal is
one JSON document on stdout (:func:`geolip.cli.output.fail`).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Literal

from geolip.cli import output

EXIT_USAGE = 2

Kind = Literal["folder", "file", "artifact"]
"""``folder``: a directory is written; ``file``: one file; ``artifact``: a codebook, a file
when the path ends in ``.safetensors`` (with a ``.json`` beside it), else a folder."""


class OutputRefusedError(ValueError):
    """The output path exists (or is of the wrong kind) and the command may not replace it."""

    def __init__(self, problem: str, path: Path) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}")


def occupied(path: Path) -> bool:
    """True for an existing file, or a folder holding anything."""
    if path.is_dir():
        return any(path.iterdir())
    return path.exists() or path.is_symlink()


def kind_problem(path: Path, kind: Kind) -> str | None:
    """Why ``path`` cannot hold an output of ``kind``, or ``None`` if it can."""
    wants_file = kind == "file" or (kind == "artifact" and path.suffix == ".safetensors")
    if wants_file and path.is_dir():
        return "is a folder, but this --out names a file; choose a file path"
    if not wants_file and path.exists() and not path.is_dir():
        return "is a file, but this --out names a folder; choose a folder path"
    return None


def claim_output(
    path: Path | None,
    *,
    kind: Kind,
    force: bool,
    resume: bool | None = None,
) -> None:
    """Refuse (exit 2) an output that exists unless ``force``; refuse a wrong kind always.

    ``resume`` is given by training commands only: ``--resume`` continues the run in ``path``
    and ``--force`` starts over (the run's ``latest/`` and ``best/`` are removed here).
    """
    if path is None:
        return
    problem = kind_problem(path, kind)
    if problem is not None:
        _refuse(problem, path)
    training = resume is not None
    if training and resume and force:
        _refuse("--resume continues this run and --force starts it over; pass one", path)
    if training and resume:
        return
    taken = occupied(path)
    if kind == "artifact" and path.suffix == ".safetensors":
        taken = taken or occupied(path.with_suffix(".json"))
    if not taken:
        return
    if not force:
        if training:
            _refuse(
                "already holds files; pass --resume to continue the run there, "
                "or --force to start over",
                path,
            )
        _refuse("already exists; pass --force to overwrite it", path)
    if training:
        for name in ("latest", "best"):
            shutil.rmtree(path / name, ignore_errors=True)


def _refuse(problem: str, path: Path) -> None:
    output.fail(OutputRefusedError(problem, path), EXIT_USAGE)
