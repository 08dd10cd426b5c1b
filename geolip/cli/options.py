"""What every command shares: its group factory, the ``--json`` and ``--force`` flags, and the
translation of a bad option value into one usage error (exit 2) that names the option."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer
from pydantic import ValidationError

from geolip.errors import InvalidOptionError

if TYPE_CHECKING:
    import torch

EXIT_USAGE = 2

JSON = typer.Option(
    False, "--json", help="Print exactly one JSON document on stdout (errors included)."
)
FORCE = typer.Option(False, "--force", help="Overwrite an existing --out.")
DEVICE = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1, ...")


def command_group(help: str) -> typer.Typer:
    """A ``geolip`` sub-command group: plain click help, in which flags show as flags and
    every option its default; bare ``geolip GROUP`` prints the help."""
    return typer.Typer(
        help=help,
        no_args_is_help=True,
        rich_markup_mode=None,
        add_completion=False,
        pretty_exceptions_enable=False,
    )


def dataset_spec(text: str) -> str:
    """Check a dataset SPEC as the command line is parsed (a bad one is a usage error naming
    the option); the text is passed on unchanged."""
    from geolip.data.specs import DatasetSpec
    from geolip.errors import DatasetError

    try:
        DatasetSpec.parse(text)
    except DatasetError as err:
        raise typer.BadParameter(err.problem) from None
    return text


def torch_device(text: str) -> torch.device:
    """``--device`` as a torch device, refused (a usage error) unless this machine has it."""
    import torch

    try:
        where = torch.device(text)
    except RuntimeError:
        where = None
    if where is None or where.type not in ("cpu", "cuda"):
        raise InvalidOptionError("--device", f"expected cpu, cuda or cuda:N, got {text!r}")
    if where.type == "cuda" and not torch.cuda.is_available():
        raise InvalidOptionError("--device", "CUDA is not available on this machine")
    if where.type == "cuda" and (where.index or 0) >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise InvalidOptionError("--device", f"{text}: this machine has {count} CUDA devices")
    return where


def json_object(option: str, text: str) -> dict[str, Any]:
    """The JSON object typed after ``option``; anything else is an :class:`InvalidOptionError`."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        problem = f"not valid JSON ({err.msg} at column {err.colno})"
        raise InvalidOptionError(option, problem) from None
    if not isinstance(value, dict):
        raise InvalidOptionError(option, f'expected a JSON object like {{"key": 1}}, got {text}')
    return value


def validation_problem(err: ValidationError) -> str:
    """A pydantic error as one line: ``field: message; field: message`` (no URLs)."""
    parts = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"])
        message = e["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def flag_for(field: str) -> str:
    """The option that sets a config field: ``batch_size`` → ``--batch-size``."""
    return "--" + field.replace("_", "-")


@contextmanager
def options_checked(
    option_for: Mapping[str, Callable[[str], str]] | None = None,
) -> Iterator[None]:
    """Raise the pydantic errors of the configs built inside as :class:`InvalidOptionError`.

    ``option_for`` maps a config class name (pydantic's error title) to the function naming the
    option of a field; unlisted classes name the option by :func:`flag_for`. A function may
    return an option that takes JSON, e.g. ``lambda f: "--model"``, then the field stays in the
    message."""
    try:
        yield
    except ValidationError as err:
        first = str(err.errors()[0]["loc"][0]) if err.errors() and err.errors()[0]["loc"] else ""
        name_option = (option_for or {}).get(err.title, flag_for)
        option = name_option(first)
        problem = validation_problem(err)
        if option == flag_for(first):
            problem = problem.removeprefix(f"{first}: ")
        raise InvalidOptionError(option, problem) from None
