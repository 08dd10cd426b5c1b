"""Outputs are never clobbered: every writing command refuses an existing --out (exit 2)
unless --force; training continues with --resume and survives Ctrl-C."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from cli_runner import run, run_json

from geolip import Codebook
from geolip.producers import quickstart as qs
from geolip.producers.checkpoint import load_checkpoint
from geolip.producers.train import Trainer

TINY_MODEL = {"V": 8, "D": 4, "patch_size": 4, "hidden": 16, "depth": 1, "n_cross": 1}
RANDOM = ["codebook", "random", "--k", "8", "--d", "4", "--null-trials", "10"]


def _train(out: Path, *extra: str) -> list[str]:
    return [
        "train",
        "sphere-solver",
        "--preset",
        "h2",
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
        "--noises",
        "gaussian",
        "--model",
        json.dumps(TINY_MODEL),
        *extra,
    ]


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _one_line_refusal(code: int, out: str, err: str, path: Path, flag: str) -> None:
    assert code == 2 and out == ""
    line = " ".join(err.split())  # rich may wrap a long line on a narrow console
    assert str(path) in line and flag in line


@pytest.mark.slow
def test_train_into_a_finished_run_is_refused_and_force_starts_over(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    run_dir = tmp_path / "run"
    code, _ = run_json(_train(run_dir, "--steps-per-epoch", "4"), capsys, monkeypatch)
    assert code == 0
    before = _tree(run_dir / "best")
    code, out, err = run(_train(run_dir), capsys, monkeypatch)
    _one_line_refusal(code, out, err, run_dir, "--resume")
    assert "--force" in err
    assert _tree(run_dir / "best") == before  # byte for byte
    code, doc = run_json(_train(run_dir), capsys, monkeypatch)
    assert code == 2 and str(run_dir) in doc["error"]["message"]
    assert doc["error"]["type"] == "OutputRefusedError" and doc["error"]["path"] == str(run_dir)

    code, doc = run_json(_train(run_dir, "--force"), capsys, monkeypatch)
    assert code == 0 and doc["step"] == 3
    assert load_checkpoint(run_dir / "best").config["step"] == 3
    code, doc = run_json(_train(run_dir, "--force", "--resume"), capsys, monkeypatch)
    assert code == 2 and "one" in doc["error"]["message"]


@pytest.mark.slow
def test_ctrl_c_saves_latest_prints_the_resume_command_and_resume_finishes(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    run_dir = tmp_path / "run"
    real_step = Trainer.train_step

    def interrupted(self: Trainer) -> torch.Tensor:
        if self.step == 2:
            raise KeyboardInterrupt
        return real_step(self)

    monkeypatch.setattr(Trainer, "train_step", interrupted)
    code, doc = run_json(_train(run_dir, "--seed", "4"), capsys, monkeypatch)
    assert code == 130
    message = doc["error"]["message"]
    assert "step 2" in message
    assert f"geolip train sphere-solver --preset h2 --out {run_dir} --resume" in message
    assert load_checkpoint(run_dir / "latest").config["step"] == 2
    monkeypatch.setattr(Trainer, "train_step", real_step)
    # the printed command, flags and all: the recipe and the model come from the checkpoint
    args = message.split("resume with: geolip ")[1].split()
    code, done = run_json(args, capsys, monkeypatch)
    assert code == 0, done
    assert done["step"] == 3 and done["epoch"] == 1
    assert load_checkpoint(run_dir / "latest").config["train"]["seed"] == 4


def test_quickstart_refuses_a_non_empty_folder_before_training(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    out = tmp_path / "qs"
    out.mkdir()
    (out / "notes.txt").write_text("mine")

    def no_training(*args, **kwargs):
        raise AssertionError("trained before checking the output folder")

    monkeypatch.setattr(qs, "train_preset", no_training)
    code, stdout, err = run(["quickstart", "--out", str(out)], capsys, monkeypatch)
    _one_line_refusal(code, stdout, err, out, "--force")
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]  # no checkpoints/ left
    with pytest.raises(FileExistsError):
        qs.run_quickstart(out)
    code, stdout, err = run(["quickstart", "--out", str(out / "notes.txt")], capsys, monkeypatch)
    assert code == 2 and "is a file" in err


def test_quickstart_force_replaces_what_it_wrote(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "qs"
    (out / "checkpoints" / "stale").mkdir(parents=True)
    (out / "codebook-angles.png").write_bytes(b"old")
    (out / "notes.txt").write_text("mine")
    seen: dict[str, bool] = {}

    def fake_training(name, ckpt, **kwargs):
        seen["clean"] = not (ckpt / "stale").exists() and not (out / "codebook-angles.png").exists()
        raise RuntimeError("stop here")

    monkeypatch.setattr(qs, "train_preset", fake_training)
    with pytest.raises(RuntimeError, match="stop here"):
        qs.run_quickstart(out, force=True)
    assert seen == {"clean": True} and (out / "notes.txt").read_text() == "mine"


@pytest.mark.slow
def test_codebook_writers_refuse_an_existing_output_unless_force(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    out = tmp_path / "cb"
    code, first = run_json([*RANDOM, "--out", str(out)], capsys, monkeypatch)
    assert code == 0
    before = _tree(out)
    code, stdout, err = run([*RANDOM, "--seed", "1", "--out", str(out)], capsys, monkeypatch)
    _one_line_refusal(code, stdout, err, out, "--force")
    assert _tree(out) == before
    code, doc = run_json(
        [*RANDOM, "--seed", "1", "--out", str(out), "--force"], capsys, monkeypatch
    )
    assert code == 0 and doc["id"] != first["id"] and Codebook.load(out).id == doc["id"]

    # a file artifact counts its .json sidecar too
    file_out = tmp_path / "cb.safetensors"
    assert run_json([*RANDOM, "--out", str(file_out)], capsys, monkeypatch)[0] == 0
    file_out.unlink()
    code, doc = run_json([*RANDOM, "--out", str(file_out)], capsys, monkeypatch)
    assert code == 2 and "--force" in doc["error"]["message"]

    # merge (and the other derived writers) check before loading anything
    for args in (
        ["codebook", "merge", "a", "b", "--out", str(out)],
        ["codebook", "extend", "a", "--axes", "b.npy", "--out", str(out)],
        ["codebook", "diff", "a", "b", "--out", str(out)],
        ["codebook", "align", "a", "b", "--out", str(out)],
        ["codebook", "extract", "pretrained:x", "--out", str(out)],
        ["codebook", "pull", "owner/name", "--out", str(out)],
        ["model", "pull", "owner/name", "--out", str(out)],
    ):
        code, doc = run_json(args, capsys, monkeypatch)
        assert code == 2, args
        assert doc["error"]["path"] == str(out) and "--force" in doc["error"]["message"]


def test_classify_train_refuses_an_existing_head_and_a_folder(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    head = tmp_path / "head.safetensors"
    head.write_bytes(b"an earlier head")
    base = ["classify", "train", "pretrained:x", "--codebook", "cb", "--dataset", "shapes:n=4"]
    code, stdout, err = run([*base, "--out", str(head)], capsys, monkeypatch)
    _one_line_refusal(code, stdout, err, head, "--force")
    assert head.read_bytes() == b"an earlier head"
    code, stdout, err = run([*base, "--out", str(tmp_path)], capsys, monkeypatch)
    assert code == 2 and "is a folder" in err and len(err.strip().splitlines()) == 1


def test_out_of_the_wrong_kind_is_refused_even_with_force(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    code, stdout, err = run([*RANDOM, "--out", str(notes), "--force"], capsys, monkeypatch)
    assert code == 2 and stdout == "" and "is a file" in err
    assert len(err.strip().splitlines()) == 1 and notes.read_text() == "mine"
    code, doc = run_json(_train(notes), capsys, monkeypatch)
    assert code == 2 and "is a file" in doc["error"]["message"]
    folder = tmp_path / "x.safetensors"
    folder.mkdir()
    code, doc = run_json([*RANDOM, "--out", str(folder)], capsys, monkeypatch)
    assert code == 2 and "is a folder" in doc["error"]["message"]
