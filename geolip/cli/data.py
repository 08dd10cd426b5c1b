"""``geolip data list``: every dataset SPEC source with its options."""

from __future__ import annotations

from geolip.cli import output
from geolip.cli.options import JSON, command_group

data_app = command_group("Offline datasets that a SPEC names.")


@data_app.command("list")
def data_list(
    json_out: bool = JSON,
) -> None:
    """Every dataset source a SPEC (NAME:key=value,...) can name, with its options' types,
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
