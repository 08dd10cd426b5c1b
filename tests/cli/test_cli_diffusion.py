"""``geolip diffusion train|sample`` and ``geolip edit`` with --json."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cli_runner import run, run_json
from PIL import Image
from tiny_producer import tiny_codebook, tiny_producer

from geolip.downstream.diffusion_io import load_diffusion
from geolip.downstream.token_files import read_tokens
from geolip.downstream.tokenizer import GeolipImageTokenizer

SMALL = ["--steps", "3", "--batch-size", "4", "--dim", "16", "--depth", "1", "--heads", "2"]


@pytest.fixture
def tokenizer_dir(tmp_path: Path) -> Path:
    model = tiny_producer(0)
    return GeolipImageTokenizer(model, tiny_codebook(model), 1).save_pretrained(tmp_path / "tok")


@pytest.fixture
def model_dir(tokenizer_dir: Path, tmp_path: Path, capsys, monkeypatch) -> Path:
    out = tmp_path / "dm"
    args = ["diffusion", "train", str(tokenizer_dir), "--dataset", "shapes:n=6,size=8"]
    code, doc = run_json([*args, *SMALL, "--out", str(out)], capsys, monkeypatch)
    assert code == 0 and doc["step"] == 3 and doc["tokens_per_image"] == 2 + 2 + 4 * 8
    assert len(doc["classes"]) > 1 and doc["loss_first"] > 0
    return out


@pytest.mark.slow
def test_train_refuses_to_clobber_and_resumes(
    model_dir: Path, tokenizer_dir: Path, capsys, monkeypatch
) -> None:
    args = ["diffusion", "train", str(tokenizer_dir), "--dataset", "shapes:n=6,size=8", *SMALL]
    code, _, err = run([*args, "--out", str(model_dir)], capsys, monkeypatch)
    assert code == 2 and "--resume" in err and "--force" in err
    resumed = [*args[:-8], "--batch-size", "4", "--dim", "16", "--depth", "1", "--heads", "2"]
    code, doc = run_json(
        [*resumed, "--steps", "5", "--out", str(model_dir), "--resume"], capsys, monkeypatch
    )
    assert code == 0 and doc["step"] == 5
    code, doc = run_json(
        [*args, "--schedule", "square", "--out", str(model_dir), "--force"], capsys, monkeypatch
    )
    assert code == 2 and doc["error"]["option"] == "--schedule"


@pytest.mark.slow
def test_sample_writes_a_grid_and_tokens(
    model_dir: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    png, tokens = tmp_path / "s.png", tmp_path / "s.safetensors"
    args = ["diffusion", "sample", str(model_dir), "--n", "3", "--size", "16", "--class", "1"]
    code, doc = run_json([*args, "--out", str(png), "--tokens", str(tokens)], capsys, monkeypatch)
    assert code == 0 and doc["shape"] == [3, 16, 16] and png.stat().st_size > 0
    tok = load_diffusion(model_dir).tokenizer
    ids = read_tokens(tokens, tok)
    assert ids.shape == (3, tok.tokens_per_image((16, 16)))
    code, _, err = run([*args, "--out", str(png)], capsys, monkeypatch)
    assert code == 2 and "--force" in err
    code, doc = run_json(
        [*args[:-2], "--class", "nope", "--out", str(tmp_path / "x.png")], capsys, monkeypatch
    )
    assert code == 1 and "unknown class 'nope'" in doc["error"]["message"]


def test_a_damaged_model_exits_3_naming_the_file(
    model_dir: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    (model_dir / "diffusion.safetensors").write_bytes(b"\x80\x04not a model")
    args = ["diffusion", "sample", str(model_dir), "--out", str(tmp_path / "s.png")]
    code, doc = run_json(args, capsys, monkeypatch)
    assert code == 3 and "diffusion.safetensors" in doc["error"]["message"]


@pytest.mark.slow
def test_edit_a_dataset_and_image_files(
    model_dir: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    png = tmp_path / "e.png"
    args = ["edit", str(model_dir), "--dataset", "shapes:n=2,size=8", "--out", str(png)]
    code, doc = run_json([*args, "--zero-axes", "0,1", "--scale", "2"], capsys, monkeypatch)
    assert code == 0 and doc["edit"] == "zero-axes" and doc["shape"] == [3, 16, 16]
    code, doc = run_json(
        [*args, "--inpaint", "0,0,0.5,0.5", "--diffusion", str(model_dir), "--force"],
        capsys,
        monkeypatch,
    )
    assert code == 0 and doc["change_rms"] >= 0
    files = []
    for i in range(2):
        pixels = np.random.default_rng(i).integers(0, 255, (8, 8, 3), dtype=np.uint8)
        files.append(tmp_path / f"{i}.png")
        Image.fromarray(pixels).save(files[-1])
    code, doc = run_json(
        [
            "edit",
            str(model_dir),
            *map(str, files),
            "--interpolate",
            "0.5",
            "--size",
            "12",
            "--out",
            str(tmp_path / "i.png"),
        ],
        capsys,
        monkeypatch,
    )
    assert code == 0 and doc["images"] == 1 and doc["shape"] == [3, 12, 12]


@pytest.mark.parametrize(
    ("extra", "option"),
    [
        (["--zero-axes", "0", "--substitute", "1:2"], "--zero-axes"),
        (["--inpaint", "0,0,1,1"], "--diffusion"),
        (["--substitute", "1-2"], "--substitute"),
        (["--inpaint", "0,0,1", "--diffusion", "x"], "--inpaint"),
    ],
)
def test_edit_usage_errors_exit_2_before_any_work(
    tokenizer_dir: Path, tmp_path: Path, extra: list[str], option: str, capsys, monkeypatch
) -> None:
    png = tmp_path / "e.png"
    args = ["edit", str(tokenizer_dir), "--dataset", "shapes:n=2,size=8", "--out", str(png)]
    code, doc = run_json([*args, *extra], capsys, monkeypatch)
    assert code == 2 and option in doc["error"]["message"] and not png.exists()


def test_an_axis_outside_the_codebook_is_a_clear_error(
    tokenizer_dir: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    args = ["edit", str(tokenizer_dir), "--dataset", "shapes:n=2,size=8", "--zero-axes", "500"]
    code, doc = run_json([*args, "--out", str(tmp_path / "e.png")], capsys, monkeypatch)
    assert code == 1 and "axis 500 is outside" in doc["error"]["message"]


def test_train_on_several_sizes_reports_each_and_refuses_a_bad_device(
    tokenizer_dir: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    out = tmp_path / "dm"
    specs = ["--dataset", "shapes:n=6,size=16", "--dataset", "shapes:n=6,size=8"]
    args = ["diffusion", "train", str(tokenizer_dir), *specs, *SMALL]
    code, doc = run_json([*args, "--out", str(out)], capsys, monkeypatch)
    assert code == 0 and doc["device"] == "cpu"
    assert [s["size"] for s in doc["sizes"]] == [[16, 16], [8, 8]]
    assert doc["size"] == [8, 8] and doc["dataset"] == "shapes:n=6,size=8"  # the smallest
    assert [s["tokens_per_image"] for s in doc["sizes"]] == [2 + 4 + 16 * 8, 2 + 2 + 4 * 8]
    assert load_diffusion(out).train_size == (8, 8)
    code, doc = run_json(
        [*args, "--out", str(tmp_path / "x"), "--device", "gpu7"], capsys, monkeypatch
    )
    assert code == 2 and "--device" in doc["error"]["message"] and not (tmp_path / "x").exists()
