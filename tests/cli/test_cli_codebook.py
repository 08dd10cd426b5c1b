"""The ``geolip codebook`` commands: JSON contract, exit codes, lazy torch import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_runner import run, run_json
from strategies import gen, random_orthogonal, separated_axes

from geolip import Codebook

RANDOM_32x4 = ["codebook", "random", "--k", "32", "--d", "4", "--seed", "3", "--null-trials", "50"]


def test_random_then_info_reports_identity_quality_and_lineage(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    out = tmp_path / "rnd"
    code, doc = run_json(
        [*RANDOM_32x4, "--out", str(out)],
        capsys,
        monkeypatch,
    )
    assert code == 0
    cb = Codebook.load(out)
    assert doc["id"] == cb.id and doc["size"] == 32 and doc["dim"] == 4
    code, info = run_json(["codebook", "info", str(out)], capsys, monkeypatch)
    assert code == 0
    assert info["id"] == cb.id and info["format_version"] == 1
    q = info["quality"]
    # what info prints is what the library computes for these axes, not a plausible range
    again = cb.assess(null_trials=50, seed=q["null"]["seed"])
    assert q["statute"] == again.statute == "uniform"  # 32 random axes: the null's own statute
    assert q["null"]["percentile"] == again.null.percentile and q["null"]["n_trials"] == 50
    assert 5 < q["null"]["percentile"] < 95  # a random codebook sits inside its null
    assert info["quality_source"] == "stored"
    assert info["lineage"] == {
        "operation": "random",
        "parents": [],
        "parameters": {"k": 32, "d": 4, "seed": 3},
    }
    # same seed, same codebook: the artifact is a pure function of its arguments
    again = tmp_path / "again"
    run_json(
        [*RANDOM_32x4, "--out", str(again)],
        capsys,
        monkeypatch,
    )
    assert Codebook.load(again).id == cb.id


def test_info_table_mode_prints_a_table(tmp_path: Path, capsys, monkeypatch) -> None:
    Codebook.from_axes(torch.eye(3)).save(tmp_path / "cb")
    code, out, _ = run(
        ["codebook", "info", str(tmp_path / "cb"), "--null-trials", "20"], capsys, monkeypatch
    )
    assert code == 0
    assert "deviation (rad)" in out and "of the null" in out and "lineage.operation" in out


@pytest.mark.slow
def test_merge_diff_extend_align_round_trip(tmp_path: Path, capsys, monkeypatch) -> None:
    axes = separated_axes(28, 4, gen(0), min_deg=12.0)
    a = Codebook.from_axes(axes[:26])
    b = Codebook.from_axes(torch.cat([axes[:24], axes[26:]]) @ random_orthogonal(4, gen(1), 1.0).T)
    a.save(tmp_path / "a")
    b.save(tmp_path / "b")
    code, doc = run_json(
        [
            "codebook",
            "merge",
            str(tmp_path / "a"),
            str(tmp_path / "b"),
            "--out",
            str(tmp_path / "m"),
            "--tol-deg",
            "1",
        ],
        capsys,
        monkeypatch,
    )
    assert code == 0 and doc["added"] == 2 and doc["lineage"]["parents"] == [a.id, b.id]
    # 24 of 26 axes shared: far more inliers than i.i.d. codebooks give, no "unrelated" warning
    assert doc["unrelated"] is False and doc["inliers_null"]["p95"] < 24
    assert doc["added_null"]["mean"] > 10 * doc["added"] / 2  # random partners add far more
    code, doc = run_json(
        ["codebook", "diff", str(tmp_path / "m"), str(tmp_path / "a"), "--tol-deg", "1"],
        capsys,
        monkeypatch,
    )
    assert code == 0 and doc["indices"] == [26, 27]
    code, doc = run_json(
        [
            "codebook",
            "align",
            str(tmp_path / "a"),
            str(tmp_path / "b"),
            "--null-trials",
            "8",
            "--out",
            str(tmp_path / "b_in_a"),
        ],
        capsys,
        monkeypatch,
    )
    assert code == 0 and doc["matched"] == 26 and doc["inliers"] == 24
    assert doc["z_score"] < -3 and doc["verdict"] == "aligned beyond chance"
    assert doc["verdict_threshold_z"] == -3.0
    assert doc["distance_null_mean"] > 0.3 and doc["distance_percentile"] == 0.0
    assert doc["distance_z"] < -3
    assert Codebook.load(tmp_path / "b_in_a").meta.lineage.operation == "align"
    np.save(tmp_path / "new.npy", np.eye(4)[:1])
    code, doc = run_json(
        [
            "codebook",
            "extend",
            str(tmp_path / "a"),
            "--axes",
            str(tmp_path / "new.npy"),
            "--out",
            str(tmp_path / "e"),
        ],
        capsys,
        monkeypatch,
    )
    assert code == 0 and doc["added"] == 1 and doc["size"] == 27


def test_exit_codes(tmp_path: Path, capsys, monkeypatch) -> None:
    good = tmp_path / "good"
    Codebook.from_axes(torch.eye(3)).save(good)
    bad = tmp_path / "bad.safetensors"
    raw = bytearray((good / "codebook.safetensors").read_bytes())
    raw[-1] ^= 0x40
    bad.write_bytes(bytes(raw))
    code, doc = run_json(["codebook", "validate", str(good), str(bad)], capsys, monkeypatch)
    assert code == 3 and doc["ok"] is False
    assert [r["ok"] for r in doc["results"]] == [True, False]
    code, doc = run_json(["codebook", "info", str(bad)], capsys, monkeypatch)
    assert code == 3 and doc["error"]["type"] == "CodebookIntegrityError"
    assert doc["error"]["path"] == str(bad)
    code, _, err = run(["codebook", "info", str(tmp_path / "missing")], capsys, monkeypatch)
    assert code == 1 and "no codebook here" in err
    code, _, _ = run(["codebook", "random", "--k", "3"], capsys, monkeypatch)
    assert code == 2
    other = tmp_path / "d4"
    Codebook.from_axes(torch.eye(4)).save(other)
    code, doc = run_json(
        ["codebook", "merge", str(good), str(other), "--out", str(tmp_path / "x")],
        capsys,
        monkeypatch,
    )
    assert code == 1 and doc["error"]["report"]["dim"] == [3, 4]
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_help_does_not_import_torch() -> None:
    probe = "import sys; from geolip.cli.app import app; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    helped = subprocess.run(
        [sys.executable, "-m", "geolip.cli.app", "codebook", "--help"],
        capture_output=True,
        text=True,
    )
    assert helped.returncode == 0 and "merge" in helped.stdout


@pytest.mark.slow
def test_merge_of_two_random_codebooks_reads_back(tmp_path: Path, capsys, monkeypatch) -> None:
    """Regression: this merge wrote a header of 896 bytes (80 03 …), which `info` then refused
    as a pickle; a written artifact must always read back."""
    for seed, name in ((1, "a"), (2, "b")):
        args = ["codebook", "random", "--k", "16", "--d", "4", "--seed", str(seed)]
        assert run([*args, "--out", str(tmp_path / name)], capsys, monkeypatch)[0] == 0
    merge = ["codebook", "merge", str(tmp_path / "a"), str(tmp_path / "b")]
    code, out, err = run([*merge, "--out", str(tmp_path / "m"), "--json"], capsys, monkeypatch)
    doc = json.loads(out)
    assert code == 0 and doc["unrelated"] is True  # two random codebooks: warned, merged anyway
    assert "look unrelated" in err
    code, doc = run_json(
        ["codebook", "align", str(tmp_path / "a"), str(tmp_path / "b"), "--null-trials", "8"],
        capsys,
        monkeypatch,
    )
    assert code == 0 and doc["verdict"] == "indistinguishable from random"
    code, doc = run_json(
        ["codebook", "diff", str(tmp_path / "a"), str(tmp_path / "b")], capsys, monkeypatch
    )
    assert code == 0 and doc["count_null"]["n_trials"] == 8
    assert abs(doc["count"] - doc["count_null"]["mean"]) <= 4 * max(doc["count_null"]["sd"], 1)
    code, info = run_json(["codebook", "info", str(tmp_path / "m")], capsys, monkeypatch)
    assert code == 0, info
    assert info["id"] == Codebook.load(tmp_path / "m").id
    assert info["lineage"]["operation"] == "merge"
