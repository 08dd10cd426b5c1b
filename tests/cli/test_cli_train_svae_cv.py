"""``geolip train svae-transformer`` and ``geolip train cv-battery``: train into a run folder,
resume, log their monitors, refuse presets of another family and data the model cannot take
(exit 2, before OUT is touched), and ``geolip codebook extract`` reads their checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_runner import run, run_json

from geolip.producers.checkpoint import load_checkpoint

SVAE_MODEL = {"V": 8, "hidden": 16, "D_lens": 8, "n_layers": 1, "n_heads": 2, "shell_hidden": 16}
CV_MODEL = {"patch_size": 2, "hidden": 16, "n_blocks": 2, "V": 6, "D": 4, "cv_matrices": 8}


def _svae(out: Path, *extra: str, model: dict | None = None) -> list[str]:
    return [
        "train",
        "svae-transformer",
        "--preset",
        "svae-transformer",
        "--out",
        str(out),
        "--epochs",
        "1",
        "--steps-per-epoch",
        "2",
        "--batch-size",
        "4",
        "--img-size",
        "8",
        "--dataset",
        "shapes:n=24,size=8",
        "--eval-per-class",
        "1",
        "--model",
        json.dumps(model or SVAE_MODEL),
        *extra,
    ]


def _cv(out: Path, *extra: str) -> list[str]:
    return [
        "train",
        "cv-battery",
        "--preset",
        "cv-battery",
        "--out",
        str(out),
        "--epochs",
        "1",
        "--steps-per-epoch",
        "2",
        "--batch-size",
        "4",
        "--img-size",
        "8",
        "--noises",
        "gaussian",
        "--model",
        json.dumps(CV_MODEL),
        *extra,
    ]


def _extract(checkpoint: Path, out: Path) -> list[str]:
    return [
        "codebook",
        "extract",
        str(checkpoint),
        "--out",
        str(out),
        "--n",
        "4",
        "--size",
        "8",
        "--null-trials",
        "10",
    ]


@pytest.mark.slow
def test_train_svae_transformer_resumes_and_its_checkpoint_extracts(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    code, doc = run_json(_svae(tmp_path / "run"), capsys, monkeypatch)
    assert code == 0, doc
    assert doc["step"] == 2 and -1 <= doc["final"]["recon_cos"] <= 1
    assert "rigidity_null_mean" in doc["final"] and len(doc["final"]["alpha"]) == 2
    code, doc = run_json(
        [*_svae(tmp_path / "run"), "--resume", "--epochs", "2"], capsys, monkeypatch
    )
    assert code == 0 and doc["step"] == 4
    saved = load_checkpoint(tmp_path / "run" / "latest").config
    assert saved["model_class"] == "SVAETransformer" and len(saved["history"]) == 2
    code, cb = run_json(
        _extract(tmp_path / "run" / "best", tmp_path / "cb"),
        capsys,
        monkeypatch,
    )
    assert code == 0, cb
    assert cb["quality"]["null"]["kind"] == "rows" and cb["quality"]["controls"]


@pytest.mark.slow
def test_train_cv_battery_logs_the_cv_and_its_checkpoint_extracts(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    code, doc = run_json(_cv(tmp_path / "run"), capsys, monkeypatch)
    assert code == 0, doc
    assert doc["final"]["cv_target"] == 0.215 and doc["final"]["cv"] > 0
    code, cb = run_json(
        _extract(tmp_path / "run" / "latest", tmp_path / "cb"),
        capsys,
        monkeypatch,
    )
    assert code == 0, cb
    assert cb["quality"]["null"]["kind"] == "rows"


@pytest.mark.parametrize(
    ("args", "option", "says"),
    [
        (["--preset", "h2"], "--preset", "not a SVAETransformer"),
        (["--dataset", "shapes:n=24,size=8,channels=1"], "--dataset", "1 channels"),
    ],
)
def test_what_the_svae_transformer_cannot_take_is_a_usage_error(
    tmp_path: Path, capsys, monkeypatch, args: list[str], option: str, says: str
) -> None:
    full = _svae(tmp_path / "run")
    for flag, value in zip(args[::2], args[1::2], strict=True):
        full[full.index(flag) + 1] = value
    code, out, err = run(full, capsys, monkeypatch)
    line = " ".join(err.split())
    assert code == 2 and out == "" and option in line and says in line, line
    assert not (tmp_path / "run").exists()


def test_a_cv_battery_preset_is_refused_by_the_other_command(tmp_path: Path, capsys, monkeypatch):
    args = _svae(tmp_path / "run")
    args[args.index("--preset") + 1] = "cv-battery"
    code, _, err = run(args, capsys, monkeypatch)
    line = " ".join(err.split())
    assert code == 2 and "geolip train cv-battery" in line, line
