"""The command-line contract, everywhere: a usage error exits 2 with one line naming the
option (and one JSON error document under --json); help shows flags as flags and the default
of every option; library warnings are one line."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest
import typer
from cli_runner import run

from geolip.cli import app as cli_app
from geolip.cli.app import app, show_warning

TRAIN = ["train", "sphere-solver", "--preset", "h2", "--epochs", "1", "--steps-per-epoch", "1"]


def _usage_cases(out: str) -> list[tuple[list[str], str]]:
    train = [*TRAIN, "--out", out]
    return [
        ([*train, "--lr", "-1"], "--lr"),
        ([*train, "--lr", "0"], "--lr"),
        ([*train, "--model", "{bad"], "--model"),
        ([*train, "--model", "[1]"], "--model"),
        ([*train, "--model", '{"no_such_field": 1}'], "--model"),
        ([*train, "--noises", "gaussian,bogus"], "--noises"),
        ([*train, "--bogus"], "--bogus"),
        ([*train, "--device", "gpu7"], "--device"),
        ([*train, "--device", "cuda:99"], "--device"),  # no CUDA, or fewer devices
        (["train", "sphere-solver", "--preset", "nope", "--out", out], "--preset"),
        (["train", "sphere-solver", "--out", out], "--preset"),
        (["codebook", "random", "--k", "4", "--d", "0", "--out", out], "--d"),
        (
            [
                "features",
                "pretrained:h2-gaussian",
                "--codebook",
                out,
                "--dataset",
                "shapes:size=0",
            ],
            "--dataset",
        ),
        (
            [
                "ood",
                "eval",
                "pretrained:h2-gaussian",
                "--codebook",
                out,
                "--id",
                "shapes:n=8",
                "--ood",
                "bogus:n=2",
            ],
            "--ood",
        ),
        (
            ["classify", "eval", out, "pretrained:h2-gaussian", "--codebook", out],
            "--dataset",
        ),
    ]


@pytest.mark.slow
@pytest.mark.parametrize("case", range(len(_usage_cases(""))))
def test_usage_errors_exit_2_with_one_line_naming_the_option(
    case: int, tmp_path: Path, capsys, monkeypatch
) -> None:
    out = tmp_path / "out"
    args, option = _usage_cases(str(out))[case]
    code, stdout, stderr = run(args, capsys, monkeypatch)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2, stderr
    assert stdout == ""
    assert len(lines) == 1 and lines[0].startswith("error:"), stderr
    assert option in lines[0]
    assert "pydantic.dev" not in stderr and "Traceback" not in stderr
    assert not out.exists()  # refused before any work

    code, stdout, _ = run([*args, "--json"], capsys, monkeypatch)
    doc = json.loads(stdout)
    assert code == 2 and option in doc["error"]["message"]


def test_a_bare_group_prints_its_help(capsys, monkeypatch) -> None:
    code, stdout, stderr = run(["codebook"], capsys, monkeypatch)
    assert code == 2 and "Commands:" in stdout + stderr and "error" not in stderr


def _commands() -> list[tuple[list[str], Any]]:
    """Every leaf command of the click tree typer builds (typer may vendor its own click)."""
    found = []

    def walk(path: list[str], command: Any) -> None:
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                walk([*path, name], sub)
        else:
            found.append((path, command))

    walk([], typer.main.get_command(app))
    return found


COMMANDS = _commands()


def test_every_command_is_reached() -> None:
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"train sphere-solver", "codebook extract", "ood eval", "data list"} <= names


@pytest.mark.slow
@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=" ".join)
def test_help_shows_flags_as_flags_and_every_default(path: list[str], capsys, monkeypatch):
    command = dict((tuple(p), c) for p, c in COMMANDS)[tuple(path)]
    code, stdout, _ = run([*path, "--help"], capsys, monkeypatch)
    assert code == 0
    assert "<bool>" not in stdout
    ctx = command.context_class(command, info_name=path[-1])
    for param in command.params:
        if param.param_type_name != "option" or param.hidden:
            continue
        opts, help_text = param.get_help_record(ctx)
        if param.is_flag:
            assert "<" not in opts, f"{opts} shows a value"
            assert opts in stdout
        elif not param.required:
            assert "default:" in help_text, f"{' '.join(path)} {opts}: no default shown"
    if "--json" in {o for p in command.params for o in getattr(p, "opts", [])}:
        assert "--json" in stdout


def test_train_help_lists_every_preset_recipe(capsys, monkeypatch) -> None:
    from geolip.producers.presets import PRESETS, train_config

    code, stdout, _ = run(["train", "sphere-solver", "--help"], capsys, monkeypatch)
    assert code == 0
    flat = " ".join(stdout.split())
    for name, preset in PRESETS.items():
        if preset.model_class.__name__ != "SphereSolver":  # each family's command lists its own
            assert f"{name} --epochs" not in flat
            continue
        recipe = train_config(name)
        assert f"{name} --epochs {recipe.epochs} --steps-per-epoch {recipe.steps_per_epoch}" in flat
        assert f"--lr {recipe.lr:g}" in flat


def test_library_warnings_are_one_line_without_source(capsys, monkeypatch) -> None:
    run(["--version"], capsys, monkeypatch)
    assert warnings.showwarning is cli_app.show_warning
    show_warning(UserWarning("something [odd]\n  happened"), UserWarning, "/x/y.py", 3)
    err = capsys.readouterr().err
    assert err.strip().splitlines() == ["warning: something [odd] happened (UserWarning)"]
