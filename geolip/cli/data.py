"""``geolip data list``: every dataset SPEC source with its options."""

from __future__ import annotations

import typer

from geolip.cli import output

data_app = typer.Typer(help="Offline datasets that a SPEC names.", no_args_is_help=True)


@data_app.command("list")
def data_list(
    json_out: bool = typer.Option(False, "--json", help="Print exactly one JSON document."),
) -> None:
    """Every dataset source a SPEC can name (``NAME:key=value,...``), with its options' types,
    defaults and limits."""
    output.set_json_mode(json_out)
    from dataclasses import asdict

    from geolip.data.specs import dataset_catalog

    catalog = dataset_catalog()
    if json_out:
        output.emit({"sources": [asdict(source) for source in catalog]}, "datasets")
        return
    rows = [
        [
            source.name,
            option.name,
            option.allowed,
            "required" if option.required else repr(option.default),
            option.help,
        ]
        for source in catalog
        for option in source.options
    ]
    output.emit_rows(["source", "option", "takes", "default", "what it does"], rows, "datasets")
