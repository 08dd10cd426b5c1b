"""``geolip train glfm``: trains into a run folder, logs the anchor drift, refuses presets of
another family and datasets or sizes the model cannot take (exit 2, before OUT is touched),
and prints its own resume command on Ctrl-C."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from cli_runner import run, run_json

from geolip.codebook import Codebook
from geolip.producers.checkpoint import load_checkpoint
from geolip.producers.train import Trainer

TINY_MODEL = {"width": 8, "hidden": 16, "n_anchors": 12, "n_blocks": 1, "D": 4, "image_size": 8}


def _train(out: Path, *extra: str, model: dict | None = None) -> list[str]:
    return [
        "train",
        "glfm",
        "--preset",
        "glfm-v4",
        "--out",
        str(out),
        "--epochs",
        "1",
        "--steps-per-epoch",
        "3",
        "--batch-size",
        "4",
        "--img-size",
        "8",
        "--dataset",
        "shapes:n=24,size=8",
        "--eval-per-class",
        "1",
        "--model",
        json.dumps(model or TINY_MODEL),
        *extra,
    ]


@pytest.mark.slow
def test_train_glfm_writes_checkpoints_and_logs_the_drift(tmp_path: Path, capsys, monkeypatch):
    code, doc = run_json(_train(tmp_path / "run"), capsys, monkeypatch)
    assert code == 0, doc
    assert doc["step"] == 3 and doc["final"]["mse"] > 0
    drift = doc["final"]["anchor_drift"]
    assert drift["n_anchors"] == 12 and 0 <= drift["near_fraction"] <= 1
    saved = load_checkpoint(tmp_path / "run" / "latest").config
    assert saved["model_class"] == "GLFM" and saved["train"]["dataset"] == "shapes:n=24,size=8"


@pytest.mark.slow
def test_codebook_extract_reads_the_trained_anchors(tmp_path: Path, capsys, monkeypatch):
    """``codebook extract --method anchors`` on a GLFM run: the anchors, collapsed, beside the
    rows null, with drift per axis; a producer without anchors is a usage error naming
    --method, and nothing is written."""
    assert run_json(_train(tmp_path / "run"), capsys, monkeypatch)[0] == 0
    out = tmp_path / "anchors"
    code, doc = run_json(
        [
            "codebook",
            "extract",
            str(tmp_path / "run" / "best"),
            "--method",
            "anchors",
            "--out",
            str(out),
            "--null-trials",
            "20",
        ],
        capsys,
        monkeypatch,
    )
    assert code == 0, doc
    cb = Codebook.load(out)
    assert cb.dim == 4 and 1 <= cb.size <= 12
    assert cb.meta.extraction.n_rows == 12 and cb.meta.extraction.calibration == "anchors"
    assert cb.meta.quality.null.kind == "rows" and cb.meta.quality.null.n_trials == 20
    assert cb.stats["drift"].shape == (cb.size,)
    code, _, err = run(
        [
            "codebook",
            "extract",
            "pretrained:h2-gaussian",
            "--method",
            "anchors",
            "--out",
            str(tmp_path / "none"),
        ],
        capsys,
        monkeypatch,
    )
    assert code == 2 and "--method" in err and "anchor constellation" in err
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize(
    ("change", "option", "says"),
    [
        (["--preset", "h2"], "--preset", "not a GLFM"),
        (["--preset", "nope"], "--preset", "glfm-v4"),
        (["--dataset", "shapes:n=24,size=8,channels=1"], "--dataset", "1 channels"),
        (["--dataset", "digits:n=40,size=8,channels=3"], "--dataset", "10 classes"),
        (["--dataset", "shapes:size=0"], "--dataset", "size"),
        (["--img-size", "16"], "--img-size", "image_size 8"),
    ],
)
def test_what_the_model_cannot_take_is_a_usage_error_before_out_is_claimed(
    tmp_path: Path, capsys, monkeypatch, change: list[str], option: str, says: str
) -> None:
    args = _train(tmp_path / "run")
    for flag, value in zip(change[::2], change[1::2], strict=True):
        args[args.index(flag) + 1] = value
    code, out, err = run(args, capsys, monkeypatch)
    line = " ".join(err.split())
    assert code == 2 and out == "" and option in line and says in line, line
    assert not (tmp_path / "run").exists()


def test_a_bad_model_field_names_model(tmp_path: Path, capsys, monkeypatch) -> None:
    args = _train(tmp_path / "run", model={**TINY_MODEL, "n_anchors": 0})
    code, _, err = run(args, capsys, monkeypatch)
    assert code == 2 and "--model" in err and "n_anchors" in err


def test_sphere_solver_refuses_a_glfm_preset_and_help_splits_the_families(capsys, monkeypatch):
    code, _, err = run(
        ["train", "sphere-solver", "--preset", "glfm-v4", "--out", "x"], capsys, monkeypatch
    )
    assert code == 2 and "geolip train glfm" in " ".join(err.split())
    code, stdout, _ = run(["train", "glfm", "--help"], capsys, monkeypatch)
    flat = " ".join(stdout.split())
    assert code == 0 and "glfm-v1 --epochs 20" in flat and "--dataset shapes:n=20000" in flat
    assert "fresnel" not in flat


@pytest.mark.slow
def test_ctrl_c_prints_the_glfm_resume_command_which_finishes(tmp_path: Path, capsys, monkeypatch):
    run_dir = tmp_path / "run"
    real_step = Trainer.train_step

    def interrupted(self: Trainer) -> torch.Tensor:
        if self.step == 2:
            raise KeyboardInterrupt
        return real_step(self)

    monkeypatch.setattr(Trainer, "train_step", interrupted)
    code, doc = run_json(_train(run_dir), capsys, monkeypatch)
    message = doc["error"]["message"]
    assert code == 130 and f"geolip train glfm --preset glfm-v4 --out {run_dir} --resume" in message
    monkeypatch.setattr(Trainer, "train_step", real_step)
    code, done = run_json(message.split("resume with: geolip ")[1].split(), capsys, monkeypatch)
    assert code == 0 and done["step"] == 3, done
