"""``geolip --version`` and ``geolip data list``."""

from __future__ import annotations

import json

from cli_runner import run

from geolip import __version__
from geolip.data.specs import dataset_catalog


def test_version_prints_the_version_and_exits_0(capsys, monkeypatch) -> None:
    code, out, _ = run(["--version"], capsys, monkeypatch)
    assert code == 0 and out.strip() == __version__


def test_data_list_names_every_source_with_its_option_defaults(capsys, monkeypatch) -> None:
    code, out, _ = run(["data", "list", "--json"], capsys, monkeypatch)
    assert code == 0
    listed = {s["name"]: s for s in json.loads(out)["sources"]}
    catalog = {s.name: s for s in dataset_catalog()}
    assert listed.keys() == catalog.keys() >= {"shapes", "digits", "noise", "ood", "photos"}
    shapes = {o["name"]: o for o in listed["shapes"]["options"]}
    assert shapes["size"]["default"] == 64 and shapes["size"]["minimum"] == 1
    code, out, _ = run(["data", "list"], capsys, monkeypatch)
    assert code == 0 and all(name in out for name in catalog)
