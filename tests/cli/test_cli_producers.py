"""``geolip quickstart``, ``geolip codebook extract`` and their artifacts."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from geolip import Codebook
from geolip.cli import output
from geolip.cli.app import main
from geolip.producers import quickstart as qs


def run_json(args: list[str], capsys, monkeypatch) -> tuple[int, dict]:
    monkeypatch.setattr(sys, "argv", ["geolip", *args, "--json"])
    output.set_json_mode(False)
    with pytest.raises(SystemExit) as info:
        main()
    return info.value.code, json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_quickstart_writes_codebook_picture_and_checkpoint(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    small = {
        **qs.QUICKSTART_TRAINING,
        "epochs": 1,
        "steps_per_epoch": 4,
        "img_size": 16,
        "eval_per_type": 2,
        "save_every": 2,
    }
    monkeypatch.setattr(qs, "QUICKSTART_TRAINING", small)
    code, doc = run_json(["quickstart", "--out", str(tmp_path / "qs")], capsys, monkeypatch)
    assert code == 0
    cb = Codebook.load(tmp_path / "qs" / "codebook")
    assert doc["id"] == cb.id and cb.meta.lineage.operation == "extract"
    names = ["untrained", "other_calibration", "constant_input", "shuffled_calibration"]
    assert [c["name"] for c in doc["quality"]["controls"]] == names
    assert all(c["distance_null_mean"] > 0 for c in doc["quality"]["controls"])
    assert doc["quality"]["null"]["kind"] == "rows"
    assert Path(doc["picture"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (Path(doc["checkpoint"]) / "model.safetensors").is_file()
    assert len(doc["validation_mse"]) == 1

    code, again = run_json(
        [
            "codebook",
            "extract",
            doc["checkpoint"],
            "--out",
            str(tmp_path / "cb2"),
            "--n",
            "64",
            "--null-trials",
            "300",
        ],
        capsys,
        monkeypatch,
    )
    assert code == 0 and again["id"] == cb.id  # same weights, same calibration → same codebook


def test_extract_refuses_foreign_checkpoints_with_exit_1(tmp_path: Path, capsys, monkeypatch):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    code, doc = run_json(
        ["codebook", "extract", str(tmp_path / "junk.pt"), "--out", str(tmp_path / "x")],
        capsys,
        monkeypatch,
    )
    assert code == 3 and "junk.pt" in doc["error"]["message"]
    code, doc = run_json(
        ["codebook", "extract", "pretrained:nope", "--out", str(tmp_path / "y")],
        capsys,
        monkeypatch,
    )
    assert code == 1 and "nope" in doc["error"]["message"]
