"""``geolip features``, ``classify train|eval`` and ``ood score|eval`` end to end (JSON)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from tiny_producer import tiny_codebook, tiny_producer

from geolip.cli import output
from geolip.cli.app import main
from geolip.producers.checkpoint import TrainingState, save_checkpoint


def run_json(args: list[str], capsys, monkeypatch) -> tuple[int, dict]:
    monkeypatch.setattr(sys, "argv", ["geolip", *args, "--json"])
    output.set_json_mode(False)
    with pytest.raises(SystemExit) as info:
        main()
    return info.value.code, json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> tuple[str, str]:
    root = tmp_path_factory.mktemp("tiny")
    producer = tiny_producer(0)
    state = TrainingState(
        model=producer.state_dict(),
        optimizer={"state": {}, "param_groups": []},
        rng={"cpu": producer.enc_in.weight.new_zeros(1)},
        config={"model": producer.config.model_dump(mode="json"), "model_class": "SphereSolver"},
    )
    save_checkpoint(root / "producer", state)
    tiny_codebook(producer).save(root / "codebook")
    return str(root / "producer"), str(root / "codebook")


def test_features_twice_reads_the_cache(artifacts, tmp_path: Path, capsys, monkeypatch) -> None:
    producer, codebook = artifacts
    args = ["features", producer, "--codebook", codebook, "--dataset", "shapes:n=6,size=16"]
    args += ["--cache-dir", str(tmp_path), "--kinds", "mean,hist,map"]
    code, first = run_json(args, capsys, monkeypatch)
    assert code == 0 and not first["from_cache"] and Path(first["path"]).is_file()
    assert first["shapes"]["mean"][0] == 6 and first["shapes"]["map"][2:] == [4, 4]
    code, second = run_json(args, capsys, monkeypatch)
    assert code == 0 and second["from_cache"] and second["key"] == first["key"]


@pytest.mark.slow
def test_classify_train_then_eval_at_another_resolution(
    artifacts, tmp_path: Path, capsys, monkeypatch
) -> None:
    producer, codebook = artifacts
    head = tmp_path / "head.safetensors"
    common = ["--codebook", codebook, "--cache-dir", str(tmp_path)]
    code, doc = run_json(
        [
            "classify",
            "train",
            producer,
            *common,
            "--dataset",
            "shapes:n=24,size=16",
            "--out",
            str(head),
            "--epochs",
            "3",
            "--test",
            "shapes:n=6,size=32,seed=1",
        ],
        capsys,
        monkeypatch,
    )
    assert code == 0 and head.is_file()
    train = doc["train"]
    assert train["n"] == 24 and train["accuracy"] == train["correct"] / 24
    assert train["ci95"][0] <= train["accuracy"] <= train["ci95"][1]
    assert train["chance"] == pytest.approx(4 / 24)  # 6 balanced shape classes
    assert train["above_chance"] in {"holds", "fails", "inconclusive"}
    assert list(doc["test"]) == ["shapes:n=6,size=32,seed=1"]
    code, doc = run_json(
        [
            "classify",
            "eval",
            str(head),
            producer,
            *common,
            "--dataset",
            "shapes:n=6,size=16,seed=1",
            "--dataset",
            "shapes:n=6,size=64,seed=1",
        ],
        capsys,
        monkeypatch,
    )
    assert code == 0 and [r["size"] for r in doc["results"]] == [[16, 16], [64, 64]]
    for r in doc["results"]:
        lo, hi = r["ci95"]
        assert r["n"] == 6 and lo <= r["accuracy"] <= hi and hi - lo > 0.2  # n = 6: wide


@pytest.mark.slow
def test_ood_score_and_eval(artifacts, tmp_path: Path, capsys, monkeypatch) -> None:
    producer, codebook = artifacts
    code, doc = run_json(
        [
            "ood",
            "score",
            producer,
            "--codebook",
            codebook,
            "--dataset",
            "noise:kind=gaussian,n=8",
            "--null-trials",
            "4",
            "--per-image",
        ],
        capsys,
        monkeypatch,
    )
    assert code == 0 and len(doc["distances"]) == 8 and doc["batch"]["n_images"] == 8
    assert doc["batch"]["z_score"] is not None
    code, doc = run_json(
        [
            "ood",
            "eval",
            producer,
            "--codebook",
            codebook,
            "--cache-dir",
            str(tmp_path),
            "--id",
            "noise:kind=gaussian,n=16,size=32",
            "--ood",
            "ood:kind=rings,n=8,size=32",
        ],
        capsys,
        monkeypatch,
    )
    assert code == 0 and doc["n_fit"] == 8 and doc["n_test"] == 8
    assert set(doc["results"]["ood:kind=rings,n=8,size=32"]) == set(doc["methods"])


def test_bad_input_fails_with_a_clear_message(artifacts, capsys, monkeypatch) -> None:
    producer, codebook = artifacts
    code, doc = run_json(
        ["features", producer, "--codebook", codebook, "--dataset", "digits:n=4", "--no-cache"],
        capsys,
        monkeypatch,
    )
    assert code == 1 and doc["error"]["type"] == "IncompatibleInputError"
    assert "1 channel" in doc["error"]["message"]
    code, doc = run_json(
        ["features", producer, "--codebook", codebook, "--dataset", "cifar", "--no-cache"],
        capsys,
        monkeypatch,
    )
    assert code == 2 and "unknown dataset" in doc["error"]["message"]
    assert "--dataset" in doc["error"]["message"]  # a usage error, named before any work
