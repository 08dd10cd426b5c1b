"""The ``geolip`` command. Thin: parse, call the Python API, render.

Exit codes: 0 ok, 1 runtime error, 2 usage error, 3 integrity or validation failure.
Torch is imported only inside commands, so ``geolip --help`` stays fast.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

import typer
from rich.markup import escape

from geolip.cli import output
from geolip.cli.codebook import codebook_app
from geolip.cli.crossmodal import align_modalities, soup
from geolip.cli.data import data_app
from geolip.cli.diffusion import diffusion_app
from geolip.cli.distill import distill
from geolip.cli.downstream import classify_app, features, ood_app
from geolip.cli.edit import edit
from geolip.cli.extract import extract
from geolip.cli.hub import codebook_pull, codebook_push, model_app
from geolip.cli.options import EXIT_USAGE, command_group
from geolip.cli.producers import quickstart, train_app
from geolip.cli.tokenize import tokenize_app
from geolip.errors import (
    CheckpointError,
    CheckpointNotFoundError,
    CodebookFormatError,
    CodebookIntegrityError,
    CodebookValidationError,
    GeolipError,
    HubIntegrityError,
    InvalidOptionError,
)

EXIT_RUNTIME = 1
EXIT_INTEGRITY = 3

app = command_group("Portable projective codebooks: make, verify, align, merge and reuse them.")
app.add_typer(codebook_app, name="codebook")
app.add_typer(train_app, name="train")
app.add_typer(classify_app, name="classify")
app.add_typer(ood_app, name="ood")
app.add_typer(model_app, name="model")
app.add_typer(data_app, name="data")
app.add_typer(tokenize_app, name="tokenize")
app.add_typer(diffusion_app, name="diffusion")
app.command()(quickstart)
app.command()(features)
app.command("align-modalities")(align_modalities)
app.command()(soup)
app.command()(distill)
app.command()(edit)
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
    """2 for a bad option value, 3 for artifacts that fail verification, 1 for every other
    runtime error."""
    if isinstance(err, InvalidOptionError):
        return EXIT_USAGE
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


# The click that typer parses with (typer >= 0.29 vendors its own copy).
click_errors = sys.modules[typer.BadParameter.__module__]


class UsageLineError(ValueError):
    """What click found wrong with the command line, as one line (exit 2)."""


def usage_line(err: click_errors.UsageError) -> str:
    """Click's usage error as one line, with the help command to try."""
    message = " ".join(err.format_message().split())
    if err.ctx is not None:
        message += f" (see: {err.ctx.command_path} --help)"
    return message


def show_warning(message: Any, category: type[Warning], *_: Any, **__: Any) -> None:
    """A library warning as one line on stderr (``warning: ...``), without file and source."""
    text = escape(" ".join(str(message).split()))
    output.log(f"[yellow]warning:[/] {text} [dim]({category.__name__})[/]")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: exit 0 ok, 1 runtime, 2 usage, 3 integrity, 130 Ctrl-C.

    Usage errors are one line on stderr, and under ``--json`` also one JSON error document on
    stdout, like every other failure."""
    args = sys.argv[1:] if argv is None else argv
    warnings.showwarning = show_warning
    try:
        code = app(args=args, prog_name="geolip", standalone_mode=False)
    except click_errors.UsageError as err:
        if type(err).__name__ == "NoArgsIsHelpError":  # bare `geolip GROUP`: its help
            err.show()
            sys.exit(err.exit_code)
        output.set_json_mode("--json" in args)
        output.fail(UsageLineError(usage_line(err)), EXIT_USAGE)
    except click_errors.ClickException as err:
        output.set_json_mode("--json" in args)
        output.fail(UsageLineError(" ".join(err.format_message().split())), err.exit_code)
    except typer.Abort:
        output.log("aborted")
        code = 130
    except GeolipError as err:
        output.fail(err, exit_code_for(err))
    except (OSError, ValueError, RuntimeError) as err:
        output.fail(err, EXIT_RUNTIME)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
