"""Run the ``geolip`` console entry point in-process, as the CLI tests do."""

from __future__ import annotations

import json
import sys

import pytest

from geolip.cli import output
from geolip.cli.app import main


def run(args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    """Invoke the console entry point in-process; returns (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["geolip", *args])
    output.set_json_mode(False)
    with pytest.raises(SystemExit) as info:
        main()
    out = capsys.readouterr()
    return info.value.code, out.out, out.err


def run_json(args: list[str], capsys, monkeypatch) -> tuple[int, dict]:
    """``run`` with ``--json``: exactly one JSON document on stdout, or this raises."""
    code, out, _ = run([*args, "--json"], capsys, monkeypatch)
    return code, json.loads(out)
