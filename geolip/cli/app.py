"""The ``geolip`` command. Thin: parse, call the Python API, render.

Exit codes: 0 ok, 1 runtime error, 2 usage error, 3 integrity or validation failure.
Torch is imported only inside commands, so ``geolip --help`` stays fast.
"""

from __future__ import annotations

import sys

import typer

from geolip.cli import output
from geolip.cli.codebook import codebook_app
from geolip.cli.data import data_app
from geolip.cli.downstream import classify_app, features, ood_app
from geolip.cli.hub import codebook_pull, codebook_push, model_app
from geolip.cli.producers import extract, quickstart, train_app
from geolip.errors import (
    CheckpointError,
    CheckpointNotFoundError,
    CodebookFormatError,
    CodebookIntegrityError,
    CodebookValidationError,
    GeolipError,
    HubIntegrityError,
)

EXIT_RUNTIME = 1
EXIT_INTEGRITY = 3

app = typer.Typer(
    name="geolip",
    help="Portable projective codebooks: make, verify, align, merge and reuse them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(codebook_app, name="codebook")
app.add_typer(train_app, name="train")
app.add_typer(classify_app, name="classify")
app.add_typer(ood_app, name="ood")
app.add_typer(model_app, name="model")
app.add_typer(data_app, name="data")
app.command()(quickstart)
app.command()(features)
codebook_app.command()(extract)
codebook_app.command("push")(codebook_push)
codebook_app.command("pull")(codebook_pull)


def _print_version(value: bool) -> None:
    if value:
        from geolip._version import __version__

        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        help="Print the version and exit.",
        is_eager=True,
        callback=_print_version,
    ),
) -> None:
    """Portable projective codebooks: make, verify, align, merge and reuse them."""


def exit_code_for(err: BaseException) -> int:
    """3 for artifacts that fail verification, 1 for every other runtime error."""
    if isinstance(err, CheckpointNotFoundError):
        return EXIT_RUNTIME
    integrity = (
        CodebookFormatError,
        CodebookIntegrityError,
        CodebookValidationError,
        CheckpointError,
        HubIntegrityError,
    )
    return EXIT_INTEGRITY if isinstance(err, integrity) else EXIT_RUNTIME


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except GeolipError as err:
        output.fail(err, exit_code_for(err))
    except (OSError, ValueError, RuntimeError) as err:
        output.fail(err, EXIT_RUNTIME)
    sys.exit(0)


if __name__ == "__main__":
    main()
