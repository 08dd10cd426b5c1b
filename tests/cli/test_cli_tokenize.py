"""``geolip tokenize build|encode|decode`` with --json."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_runner import run, run_json
from tiny_producer import tiny_codebook, tiny_producer

from geolip import Codebook
from geolip.downstream.token_files import read_images
from geolip.downstream.tokenizer import GeolipImageTokenizer


@pytest.fixture
def tokenizer_dir(tmp_path: Path, capsys, monkeypatch) -> Path:
    model = tiny_producer(0)
    model_dir = model.save_pretrained(tmp_path / "model")
    tiny_codebook(model).save(tmp_path / "cb")
    out = tmp_path / "tok"
    args = ["tokenize", "build", str(model_dir), "--codebook", str(tmp_path / "cb")]
    args += ["--top-k", "2", "--calibration", "shapes:n=4,size=16", "--out", str(out)]
    code, doc = run_json(args, capsys, monkeypatch)
    assert code == 0 and doc["top_k"] == 2 and doc["tokens_per_patch"] == 16
    assert doc["special_tokens"]["image_start"] == 2 * doc["axes"]
    return out


@pytest.mark.slow
def test_build_encode_decode(tokenizer_dir: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    tokens = tmp_path / "t.safetensors"
    encode = ["tokenize", "encode", str(tokenizer_dir), "--dataset", "shapes:n=3,size=16"]
    code, doc = run_json([*encode, "--out", str(tokens)], capsys, monkeypatch)
    assert code == 0 and doc["images"] == 3 and doc["tokens_per_image"] == 2 + 4 + 16 * 16
    assert 1 <= doc["usage"]["perplexity"] <= doc["usage"]["axes"]
    code, _, err = run([*encode, "--out", str(tokens)], capsys, monkeypatch)
    assert code == 2 and "--force" in err  # never clobbered

    images, png = tmp_path / "i.safetensors", tmp_path / "i.png"
    decode = ["tokenize", "decode", str(tokenizer_dir), str(tokens), "--out", str(images)]
    code, doc = run_json([*decode, "--png", str(png)], capsys, monkeypatch)
    assert code == 0 and doc["shape"] == [3, 16, 16] and png.stat().st_size > 0
    tok = GeolipImageTokenizer.from_pretrained(tokenizer_dir)
    assert read_images(images).shape == (3, 3, 16, 16)
    code, doc = run_json([*decode, "--size", "24,20", "--force"], capsys, monkeypatch)
    assert code == 0 and doc["shape"] == [3, 24, 20]
    assert tok.vocab_size == 2 * tok.codebook.size + 4


def test_tokens_of_another_tokenizer_are_refused(
    tokenizer_dir: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    tokens = tmp_path / "t.safetensors"
    args = ["tokenize", "encode", str(tokenizer_dir), "--dataset", "shapes:n=2,size=8"]
    assert run_json([*args, "--out", str(tokens)], capsys, monkeypatch)[0] == 0
    other = GeolipImageTokenizer(tiny_producer(1), Codebook.random(6, 4), 1)
    other.save_pretrained(tmp_path / "other")
    args = ["tokenize", "decode", str(tmp_path / "other"), str(tokens)]
    code, doc = run_json([*args, "--out", str(tmp_path / "x.safetensors")], capsys, monkeypatch)
    assert code == 3 and "tokens were made with producer_id" in doc["error"]["message"]


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["encode", "TOK", "--dataset", "shapes:n=2", "--out", "x.bin"], "--out"),
        (["encode", "TOK", "--dataset", "shapes:size=0", "--out", "x.safetensors"], "--dataset"),
        (["decode", "TOK", "t.safetensors", "--out", "x.safetensors", "--size", "0"], "--size"),
        (["decode", "TOK", "t.safetensors", "--out", "x.safetensors", "--png", "x.jpg"], "--png"),
        (
            ["build", "pretrained:h2-gaussian", "--codebook", "c", "--out", "o", "--top-k", "0"],
            "--top-k",
        ),
    ],
)
def test_usage_errors(args: list[str], option: str, tmp_path: Path, capsys, monkeypatch) -> None:
    code, stdout, stderr = run(["tokenize", *args], capsys, monkeypatch)
    assert code == 2 and stdout == "" and option in stderr


def test_grey_images_for_a_colour_producer_fail_before_encoding(
    tokenizer_dir: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    out = tmp_path / "t.safetensors"
    args = ["tokenize", "encode", str(tokenizer_dir), "--dataset", "digits:n=4"]
    code, doc = run_json([*args, "--out", str(out)], capsys, monkeypatch)
    assert code == 1 and "channel" in doc["error"]["message"] and not out.exists()
