"""Typed errors. Every error that concerns a file names the file and the problem."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class GeolipError(Exception):
    """Base class of every error geolip raises on purpose."""


class CodebookError(GeolipError):
    """A codebook artifact or operation was refused.

    Attributes:
        path: the file concerned, or ``None`` for in-memory codebooks.
        problem: what is wrong, in one sentence.
    """

    def __init__(self, problem: str, path: str | Path | None = None) -> None:
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path is not None else problem)


class CodebookNotFoundError(CodebookError, FileNotFoundError):
    """The artifact path does not exist or holds no codebook."""


class CodebookFormatError(CodebookError, ValueError):
    """The bytes are not a geolip codebook: truncated, malformed, pickled, wrong dtype or shape."""


class CodebookVersionError(CodebookFormatError):
    """The artifact's format version is not one this library reads."""


class CodebookValidationError(CodebookError, ValueError):
    """The tensors parse but break an invariant: non-finite, non-unit or non-canonical axes."""


class CodebookIntegrityError(CodebookError):
    """Stored and recomputed hashes disagree: the artifact was altered after it was written."""


class IncompatibleCodebooksError(CodebookError, ValueError):
    """Two codebooks cannot be combined; ``report`` says why, field by field."""

    def __init__(self, problem: str, report: dict[str, Any]) -> None:
        self.report = report
        super().__init__(problem)


class HubError(GeolipError):
    """A transfer to or from a Hugging Face Hub repo was refused or failed.

    Attributes:
        repo_id: the repo concerned.
        revision: the branch, tag or commit asked for, or ``None``.
        problem: what is wrong, in one sentence.
    """

    def __init__(self, problem: str, repo_id: str, revision: str | None = None) -> None:
        self.repo_id = repo_id
        self.revision = revision
        self.problem = problem
        where = repo_id if revision is None else f"{repo_id}@{revision}"
        super().__init__(f"{where}: {problem}")


class HubUnreachableError(HubError, ConnectionError):
    """The endpoint did not answer within the timeout, or offline mode forbids asking it."""


class HubNotFoundError(HubError, FileNotFoundError):
    """No such repo or revision, a file the artifact needs is missing, or an offline cache miss."""


class HubIntegrityError(HubError):
    """Bytes differ from the hashes the Hub advertised or the store recorded, or the content id
    is not the one expected: altered in transit, on the server or in the cache."""


class CheckpointError(GeolipError, ValueError):
    """A model checkpoint was refused: unreadable, foreign, inconsistent or unsupported.

    Attributes:
        path: the file concerned.
        problem: what is wrong, in one sentence.
    """

    def __init__(self, problem: str, path: str | Path) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint path does not exist."""


class OptionalDependencyError(GeolipError, ImportError):
    """A feature needs a package that is not installed.

    Attributes:
        package: the missing distribution, as pip names it.
        install: the command that provides it.
    """

    def __init__(self, package: str, purpose: str, install: str) -> None:
        self.package = package
        self.install = install
        super().__init__(f"{purpose} needs the package {package!r}; install it with: {install}")


class DatasetError(GeolipError, ValueError):
    """A dataset cannot be used: empty, malformed, or its source files are unreadable.

    Attributes:
        path: the file concerned, or ``None`` for in-memory data.
        problem: what is wrong, in one sentence.
    """

    def __init__(self, problem: str, path: str | Path | None = None) -> None:
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path is not None else problem)


class IncompatibleInputError(GeolipError, ValueError):
    """Inputs that cannot go together: images a producer cannot take, a codebook whose D is not
    the producer's, features a head was not trained on. Raised before any work starts."""


class InvalidOptionError(GeolipError, ValueError):
    """A command-line option has a value the command cannot use (a usage error, exit 2).

    Attributes:
        option: the option as typed, e.g. ``--lr`` or ``--model``.
        problem: what is wrong with its value, in one line.
    """

    def __init__(self, option: str, problem: str) -> None:
        self.option = option
        self.problem = problem
        super().__init__(f"{option}: {problem}")


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped training after a whole step; ``latest/`` was saved at that step.

    Still a ``KeyboardInterrupt``, so code that does not know it stops as before.

    Attributes:
        step, epoch: the counters saved in the checkpoint.
        path: the ``latest/`` folder written, or ``None`` when nothing could be saved.
    """

    def __init__(self, message: str, step: int, epoch: int, path: Path | None) -> None:
        self.step = step
        self.epoch = epoch
        self.path = path
        super().__init__(message)
