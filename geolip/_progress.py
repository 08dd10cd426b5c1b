"""The one progress bar of long loops: transient, on stderr (stdout holds results only)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)


def progress_bar(enabled: bool, *fields: str) -> Progress:
    """A transient rich bar on stderr: description, bar, done/total, ``fields``, time left.

    Args:
        enabled: False gives a bar that draws nothing (the loop code stays the same).
        fields: rich format strings of extra columns over the task's fields, e.g.
            ``"{task.fields[rate]:.1f} img/s"``; every task must then carry those fields.
    """
    columns: list[ProgressColumn] = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *(TextColumn(field) for field in fields),
        TimeRemainingColumn(),
    ]
    return Progress(*columns, console=Console(stderr=True), transient=True, disable=not enabled)
