"""``geolip codebook extract`` from any dataset spec, by mean collapse or projective k-means."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_runner import run, run_json
from tiny_producer import tiny_producer

from geolip import Codebook

SHAPES = "shapes:n=4,size=16"


@pytest.fixture
def model_dir(tmp_path: Path) -> str:
    return str(tiny_producer(0).save_pretrained(tmp_path / "model"))


def test_kmeans_from_a_dataset_spec(model_dir: str, tmp_path: Path, capsys, monkeypatch) -> None:
    out = tmp_path / "km"
    args = ["codebook", "extract", model_dir, "--calibration", SHAPES, "--method", "kmeans"]
    args += ["--k", "6", "--restarts", "1", "--kmeans-null-trials", "2", "--null-trials", "10"]
    code, doc = run_json([*args, "--out", str(out)], capsys, monkeypatch)
    assert code == 0
    cb = Codebook.load(out)
    assert doc["id"] == cb.id and cb.size == 6 and doc["stats"] == ["mean_abs_cos", "usage"]
    assert doc["extraction"]["aggregation"] == "kmeans"
    assert doc["extraction"]["calibration"] == SHAPES
    assert doc["kmeans"]["rows"] == 4 * 16 * 8
    assert set(doc["kmeans"]["objective"]) >= {"observed", "null_mean", "null_sd", "z"}
    code, text, _ = run([*args, "--out", str(out), "--force"], capsys, monkeypatch)
    assert code == 0 and "i.i.d. rows" in text


@pytest.mark.slow
def test_mean_from_a_dataset_spec(model_dir: str, tmp_path: Path, capsys, monkeypatch) -> None:
    out = tmp_path / "mean"
    args = ["codebook", "extract", model_dir, "--calibration", SHAPES, "--null-trials", "10"]
    code, doc = run_json([*args, "--out", str(out)], capsys, monkeypatch)
    assert code == 0 and doc["extraction"]["calibration"] == SHAPES and doc["kmeans"] is None
    names = [c["name"] for c in doc["quality"]["controls"]]
    assert "shuffled_calibration" in names  # shapes have spatial structure to lose


@pytest.mark.parametrize(
    ("extra", "option"),
    [
        (["--method", "kmeans"], "--k"),
        (["--k", "4"], "--k"),
        (["--method", "bogus"], "--method"),
        (["--aggregation", "mode"], "--aggregation"),
        (["--calibration", "bogus:n=2"], "--calibration"),
        (["--calibration", "shapes:n=0"], "--calibration"),
        (["--calibration", SHAPES, "--n", "8"], "--n"),
        (["--calibration", SHAPES, "--size", "8"], "--size"),
    ],
)
def test_bad_options_are_usage_errors_before_any_work(
    extra: list[str], option: str, tmp_path: Path, capsys, monkeypatch
) -> None:
    out = tmp_path / "x"
    args = ["codebook", "extract", "pretrained:nope", "--out", str(out), *extra]
    code, stdout, stderr = run(args, capsys, monkeypatch)
    assert code == 2 and stdout == "" and option in stderr and not out.exists()


def test_channels_the_producer_cannot_take_are_refused(
    model_dir: str, tmp_path: Path, capsys, monkeypatch
) -> None:
    out = tmp_path / "x"
    args = ["codebook", "extract", model_dir, "--calibration", "digits:n=4", "--out", str(out)]
    code, doc = run_json(args, capsys, monkeypatch)
    assert code == 1 and "channels=3" in doc["error"]["message"] and not out.exists()
