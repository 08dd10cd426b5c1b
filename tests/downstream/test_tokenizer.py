"""The image tokenizer: layout of the sequence, ids that encode axis and sign, decoding through
the producer's decoder, save/load, and refusals before any work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tiny_producer import PatchProjector, PatchProjectorConfig, tiny_codebook, tiny_producer

from geolip import Codebook
from geolip.downstream.tokenizer import SPECIAL_TOKENS, GeolipImageTokenizer
from geolip.errors import CheckpointError, IncompatibleInputError
from geolip.producers.loading import load_producer

V, PS, C = 8, 4, 3  # the tiny producer's rows per patch, patch side, channels


@pytest.fixture(scope="module")
def parts() -> tuple:
    producer = tiny_producer(0, n_cross=1)  # cross-attention on: decoding sees every patch
    return producer, tiny_codebook(producer)


def images(n: int, h: int = 16, w: int = 12, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, C, h, w, generator=torch.Generator().manual_seed(seed))


def test_the_sequence_layout_and_its_length(parts: tuple) -> None:
    tok = GeolipImageTokenizer(*parts, top_k=2)
    k = tok.codebook.size
    assert tok.vocab_size == len(tok) == 2 * k + 4
    assert tok.all_special_ids == [2 * k, 2 * k + 1, 2 * k + 2, 2 * k + 3]
    ids = torch.tensor(tok.encode(images(1)[0]))
    gh, gw, per_patch = 4, 3, V * 2
    assert len(ids) == tok.tokens_per_image((16, 12)) == 2 + gh + gh * gw * per_patch
    assert ids[0] == tok.image_start_token_id and ids[-1] == tok.image_end_token_id
    row_starts = (ids == tok.row_start_token_id).nonzero().flatten()
    assert row_starts.tolist() == [1 + r * (1 + gw * per_patch) for r in range(gh)]
    body = ids[1:-1][(ids[1:-1] != tok.row_start_token_id)]
    assert len(body) == gh * gw * per_patch and bool((body < 2 * k).all())
    vocab = tok.get_vocab()
    assert vocab["<axis_0+>"] == 0 and vocab["<axis_0->"] == 1
    assert [vocab[t] for t in SPECIAL_TOKENS] == tok.all_special_ids


def test_each_id_is_the_top_axis_of_its_row_with_the_sign_of_its_cosine(parts: tuple) -> None:
    producer, cb = parts
    tok = GeolipImageTokenizer(producer, cb, top_k=1)
    x = images(1)
    ids = torch.tensor(tok.encode(x[0]))
    body = ids[1:-1][ids[1:-1] != tok.row_start_token_id]  # raster order, V rows per patch
    with torch.no_grad():
        rows = producer.encode_rows(x)[0]  # (P, V, D)
    cos = cb.activations(rows, signed=True)
    top = cos.abs().argmax(dim=-1).flatten()
    sign = cos.gather(-1, cos.abs().argmax(dim=-1, keepdim=True)).flatten() < 0
    assert torch.equal(body // 2, top) and torch.equal(body % 2 == 1, sign)


def test_decode_runs_rebuilt_rows_through_the_producer_decoder(parts: tuple) -> None:
    producer, cb = parts
    tok = GeolipImageTokenizer(producer, cb, top_k=1)
    x = images(2)
    decoded = tok.batch_decode(tok(x, return_tensors="pt")["input_ids"])
    assert [d.shape for d in decoded] == [(C, 16, 12)] * 2
    idx, signs = tok.axis_codes(x)
    rows = signs.unsqueeze(-1).float() * cb.axes[idx.squeeze(-1)].unsqueeze(-2)  # top-1
    with torch.no_grad():
        expected = producer.decode_rows(rows.squeeze(-2), (4, 3))
    assert torch.allclose(torch.stack(decoded), expected, atol=1e-5)
    assert tok.decode(tok.encode(x[0]), (15, 10)).shape == (C, 15, 10)  # same grid: crop
    assert torch.equal(tok.decode(tok.encode(x[0]), (15, 10)), decoded[0][:, :15, :10])
    assert tok.decode(tok.encode(x[0]), (32, 24)).shape == (C, 32, 24)  # resized


def test_call_pads_mixed_sizes_and_batch_decode_keeps_the_order(parts: tuple) -> None:
    tok = GeolipImageTokenizer(*parts, top_k=1)
    small, large = images(1, 8, 8)[0], images(1, 12, 16, seed=1)[0]
    plain = tok([small, large])
    assert [len(s) for s in plain["input_ids"]] == [2 + 2 + 4 * V, 2 + 3 + 12 * V]
    assert plain["attention_mask"][0] == [1] * len(plain["input_ids"][0])
    padded = tok([small, large], return_tensors="pt")
    assert padded["input_ids"].shape == (2, 2 + 3 + 12 * V)
    n_small = len(plain["input_ids"][0])
    assert bool((padded["input_ids"][0, n_small:] == tok.pad_token_id).all())
    assert padded["attention_mask"][0].sum() == n_small
    out = tok.batch_decode(padded["input_ids"])
    assert [o.shape for o in out] == [(C, 8, 8), (C, 12, 16)]
    assert torch.equal(out[0], tok.decode(plain["input_ids"][0]))
    assert tok(small)["input_ids"] == [tok.encode(small)]


def _row_error(tok: GeolipImageTokenizer, x: torch.Tensor) -> float:
    """Mean squared distance between the producer's rows and the rows rebuilt from tokens."""
    with torch.no_grad():
        rows = tok.producer.encode_rows(x)
    idx, signs = tok.axis_codes(x)
    mixed = (signs.float() * tok.rank_weights).unsqueeze(-1) * tok.codebook.axes[idx]
    rebuilt = torch.nn.functional.normalize(mixed.sum(-2), dim=-1)
    return float((rebuilt - rows).square().sum(-1).mean())


def test_calibrated_rank_weights_fit_the_rows_better_than_equal_weights(parts: tuple) -> None:
    plain = GeolipImageTokenizer(*parts, top_k=3)
    x = images(4)
    tok = plain.calibrated(x, steps=100)
    w = tok.rank_weights
    assert w.shape == (V, 3) and bool((w > 0).all())
    assert _row_error(tok, x) < _row_error(plain, x)
    assert torch.equal(plain.calibrated(x, steps=100).rank_weights, w)  # deterministic
    assert GeolipImageTokenizer(*parts, top_k=1).calibrated(x).rank_weights.tolist() == [[1.0]] * V
    assert tok.decode(tok.encode(images(1)[0])).shape == (C, 16, 12)


def test_save_and_load_give_the_same_tokenizer(parts: tuple, tmp_path: Path) -> None:
    tok = GeolipImageTokenizer(*parts, top_k=2).calibrated(images(3), steps=20)
    folder = tok.save_pretrained(tmp_path / "tok")
    back = GeolipImageTokenizer.from_pretrained(folder)
    x = images(1, seed=5)[0]
    assert back.top_k == 2 and torch.equal(back.rank_weights, tok.rank_weights)
    assert back.codebook.id == tok.codebook.id
    assert back.producer.producer_id == tok.producer.producer_id
    ids = tok.encode(x)
    assert back.encode(x) == ids and torch.equal(back.decode(ids), tok.decode(ids))
    assert load_producer(folder).producer_id == tok.producer.producer_id
    assert Codebook.load(folder).id == tok.codebook.id
    config = json.loads((folder / "tokenizer_config.json").read_text())
    assert config["special_tokens"]["<row_start>"] == tok.row_start_token_id
    config["codebook_id"] = "0" * 64
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="not the one the config names"):
        GeolipImageTokenizer.from_pretrained(folder)


def test_pretrained_producer_round_trip() -> None:
    producer = load_producer("pretrained:h2-gaussian")
    cb = Codebook.random(16, 4, seed=0)
    tok = GeolipImageTokenizer(producer, cb, top_k=1)
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    ids = tok.encode(x[0])
    assert len(ids) == 2 + 4 + 16 * 32 and tok.decode(ids).shape == (3, 16, 16)


class _Counting:
    """Counts encode_rows calls of a producer (to prove refusals come before any work)."""

    def __init__(self, producer: torch.nn.Module, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        original = producer.encode_rows

        def counted(x: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            return original(x)

        monkeypatch.setattr(producer, "encode_rows", counted)


def test_refusals_come_before_any_work(parts: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    producer, cb = parts
    counter = _Counting(producer, monkeypatch)
    tok = GeolipImageTokenizer(producer, cb, top_k=1)
    with pytest.raises(IncompatibleInputError, match="1 channel"):
        tok.encode(torch.randn(1, 16, 16))
    with pytest.raises(IncompatibleInputError, match="smaller than one"):
        tok(torch.randn(1, C, 2, 2))
    with pytest.raises(IncompatibleInputError, match="one image"):
        tok.encode(torch.randn(2, C, 8, 8))
    assert counter.calls == 0
    with pytest.raises(IncompatibleInputError, match="D=3"):
        GeolipImageTokenizer(producer, Codebook.random(8, 3), top_k=1)
    with pytest.raises(IncompatibleInputError, match="top_k"):
        GeolipImageTokenizer(producer, cb, top_k=cb.size + 1)
    with pytest.raises(TypeError, match="decode path"):
        GeolipImageTokenizer(PatchProjector(PatchProjectorConfig(D=4)), cb)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda ids, tok: [*ids[:5], tok.vocab_size, *ids[6:]], "token .* at position 5"),
        (lambda ids, tok: [*ids[:5], -1, *ids[6:]], "outside the vocabulary"),
        (lambda ids, tok: ids[1:], "begin with <image_start>"),
        (lambda ids, tok: ids[:-1], "end with <image_end>"),
        (lambda ids, tok: [*ids[:-2], ids[-1]], "same length"),
        (lambda ids, tok: [ids[0], *ids[2:]], "begin with <row_start>"),
        (lambda ids, tok: [*ids[:3], tok.image_start_token_id, *ids[4:]], "special tokens inside"),
    ],
)
def test_bad_sequences_are_refused_before_decoding(
    edit, match: str, parts: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    producer, cb = parts
    tok = GeolipImageTokenizer(producer, cb, top_k=1)
    ids = tok.encode(images(1, 8, 8)[0])
    monkeypatch.setattr(producer, "decode_rows", lambda *a: pytest.fail("decoder ran"))
    with pytest.raises(IncompatibleInputError, match=match):
        tok.decode(edit(ids, tok))
