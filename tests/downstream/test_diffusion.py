"""Discrete diffusion over axis tokens: schedules, the loss, the seeded sampler, structural
tokens, longer sequences, save/load, resume, and refusals before any work."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from tiny_producer import tiny_codebook, tiny_producer

from geolip.data.dataset import ImageDataset
from geolip.downstream.diffusion import (
    AxisDenoiser,
    DenoiserConfig,
    DiffusionModel,
    SamplingOptions,
    masked_loss,
    sample_ids,
)
from geolip.downstream.diffusion_io import load_diffusion, save_diffusion
from geolip.downstream.diffusion_schedules import SCHEDULES, mask_ratio
from geolip.downstream.diffusion_train import DiffusionTrainConfig, train_diffusion
from geolip.downstream.tokenizer import GeolipImageTokenizer
from geolip.errors import (
    CheckpointError,
    CheckpointNotFoundError,
    IncompatibleInputError,
    TrainingInterrupted,
)

V, C = 8, 3  # the tiny producer's rows per patch and channels; patches are 4 × 4
SMALL = DiffusionTrainConfig(
    steps=4, batch_size=4, lr=1e-3, warmup=0, dim=16, depth=1, heads=2, checkpoint_every=2
)


@pytest.fixture(scope="module")
def tok() -> GeolipImageTokenizer:
    producer = tiny_producer(0)
    return GeolipImageTokenizer(producer, tiny_codebook(producer), 1)


def refuse_encoding(tok: GeolipImageTokenizer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any encoding by ``tok``'s producer fail the test: the input must be refused first."""

    def no_work(*_: object) -> None:
        raise AssertionError("encoded before refusing")

    monkeypatch.setattr(tok.producer, "encode_rows", no_work)


def toy(n: int = 8, size: int = 8, channels: int = C) -> ImageDataset:
    x = torch.randn(n, channels, size, size, generator=torch.Generator().manual_seed(0))
    return ImageDataset.from_tensors("toy", x, torch.arange(n) % 2, ("even", "odd"))


def denoiser(tok: GeolipImageTokenizer, classes: int = 2, seed: int = 0) -> AxisDenoiser:
    config = DenoiserConfig(
        axis_tokens=2 * tok.codebook.size,
        rows_per_patch=V,
        top_k=1,
        num_classes=classes,
        dim=16,
        depth=1,
        heads=2,
    )
    torch.manual_seed(seed)
    return AxisDenoiser(config).eval()


def model_of(tok: GeolipImageTokenizer, seed: int = 0) -> DiffusionModel:
    return DiffusionModel(denoiser(tok, seed=seed), tok, ("even", "odd"), (8, 8))


@given(
    st.sampled_from(SCHEDULES),
    st.floats(0, 1, allow_nan=False),
    st.floats(0, 1, allow_nan=False),
)
def test_schedules_fall_from_one_to_zero(schedule: str, a: float, b: float) -> None:
    lo, hi = min(a, b), max(a, b)
    g_lo, g_hi = mask_ratio(schedule, lo), mask_ratio(schedule, hi)  # type: ignore[arg-type]
    assert 0 <= float(g_hi) <= float(g_lo) <= 1
    assert float(mask_ratio(schedule, 0.0)) == 1.0  # type: ignore[arg-type]
    assert float(mask_ratio(schedule, 1.0)) == 0.0  # type: ignore[arg-type]


def test_schedules_differ_as_documented() -> None:
    r = torch.tensor([0.5])
    assert float(mask_ratio("linear", r)) == pytest.approx(0.5)
    assert float(mask_ratio("cosine", r)) == pytest.approx(2**-0.5)
    assert float(mask_ratio("arccos", r)) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="unknown masking schedule"):
        mask_ratio("square", r)  # type: ignore[arg-type]


def test_a_training_step_lowers_the_loss_on_a_fixed_batch(tok: GeolipImageTokenizer) -> None:
    net = denoiser(tok).train()
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(2 * tok.codebook.size, (4, 4 * V), generator=g)
    labels = torch.tensor([0, 1, 0, 1])

    def loss() -> torch.Tensor:
        return masked_loss(net, ids, (2, 2), labels, "cosine", torch.Generator().manual_seed(0))

    before = loss()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    optimizer.zero_grad()
    before.backward()
    optimizer.step()
    assert float(loss().detach()) < float(before.detach()) - 0.01


def test_the_sampler_is_deterministic_under_a_seed(tok: GeolipImageTokenizer) -> None:
    model = model_of(tok)
    a = model.sample(3, label=1, seed=5)
    assert torch.equal(a, model.sample(3, label="odd", seed=5))
    assert not torch.equal(a, model.sample(3, label=1, seed=6))


@pytest.mark.slow
def test_structural_tokens_are_placed_and_samples_decode(tok: GeolipImageTokenizer) -> None:
    ids = model_of(tok).sample(2, (12, 8), seed=0)  # a 3 × 2 grid
    gh, gw = 3, 2
    assert ids.shape == (2, tok.tokens_per_image((12, 8)))
    for seq in ids:
        assert seq[0] == tok.image_start_token_id and seq[-1] == tok.image_end_token_id
        starts = (seq == tok.row_start_token_id).nonzero().flatten().tolist()
        assert starts == [1 + r * (1 + gw * V) for r in range(gh)]
        body = seq[1:-1][seq[1:-1] != tok.row_start_token_id]
        assert len(body) == gh * gw * V and bool((body < 2 * tok.codebook.size).all())
    assert [x.shape for x in tok.batch_decode(ids)] == [(C, 12, 8)] * 2


def test_longer_sequences_sample_with_the_right_length(tok: GeolipImageTokenizer) -> None:
    model = model_of(tok)  # "trained" at 8 × 8: 2 × 2 patches
    ids = model.sample(1, (32, 32), label=0, seed=0, options=SamplingOptions(steps=4))
    assert ids.shape == (1, tok.tokens_per_image((32, 32))) == (1, 2 + 8 + 64 * V)
    assert tok.decode(ids[0]).shape == (C, 32, 32)


@pytest.mark.slow
def test_inpainting_keeps_the_known_tokens(tok: GeolipImageTokenizer) -> None:
    net = denoiser(tok)
    n = 4 * V
    known = torch.randint(2 * tok.codebook.size, (2, n), generator=torch.Generator().manual_seed(3))
    resample = torch.zeros(2, n, dtype=torch.bool)
    resample[:, :V] = True  # the first patch
    out = sample_ids(
        net,
        (2, 2),
        torch.tensor([0, 1]),
        torch.Generator().manual_seed(0),
        known=known,
        resample=resample,
    )
    assert torch.equal(out[:, V:], known[:, V:])
    assert not torch.equal(out[:, :V], known[:, :V])


@pytest.mark.slow
def test_save_and_load_give_identical_outputs(tok: GeolipImageTokenizer, tmp_path: Path) -> None:
    model = model_of(tok, seed=3)
    save_diffusion(tmp_path / "dm", model)
    back = load_diffusion(tmp_path / "dm")
    assert back.classes == model.classes and back.train_size == (8, 8)
    ids = torch.full((1, 4 * V), back.denoiser.mask_id)
    labels = torch.tensor([1])
    assert torch.equal(back.denoiser(ids, (2, 2), labels), model.denoiser(ids, (2, 2), labels))
    assert torch.equal(back.sample(2, seed=4), model.sample(2, seed=4))
    assert GeolipImageTokenizer.from_pretrained(tmp_path / "dm").codebook.id == tok.codebook.id


@pytest.mark.slow
def test_resume_continues_exactly(tok: GeolipImageTokenizer, tmp_path: Path) -> None:
    data = toy()
    whole = train_diffusion(tok, data, tmp_path / "whole", SMALL)
    half = SMALL.model_copy(update={"steps": 2})
    train_diffusion(tok, data, tmp_path / "split", half)
    resumed = train_diffusion(tok, data, tmp_path / "split", SMALL, resume=True)
    assert resumed.step == whole.step == 4
    assert resumed.losses == whole.losses[2:]
    a, b = whole.model.denoiser.state_dict(), load_diffusion(tmp_path / "split").denoiser
    assert all(torch.equal(a[k], v) for k, v in b.state_dict().items())
    with pytest.raises(CheckpointError, match="other settings: lr"):
        train_diffusion(
            tok, data, tmp_path / "split", SMALL.model_copy(update={"lr": 1.0}), resume=True
        )


def test_damaged_files_are_refused_naming_the_file(
    tok: GeolipImageTokenizer, tmp_path: Path
) -> None:
    folder = save_diffusion(tmp_path / "dm", model_of(tok))
    weights = folder / "diffusion.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=r"diffusion\.safetensors"):
        load_diffusion(folder)
    (folder / "diffusion_config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"diffusion_config\.json"):
        load_diffusion(folder)
    with pytest.raises(CheckpointNotFoundError, match="not a saved geolip diffusion model"):
        load_diffusion(tmp_path)


def test_bad_input_is_refused_before_any_work(
    tok: GeolipImageTokenizer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refuse_encoding(tok, monkeypatch)
    with pytest.raises(IncompatibleInputError, match="channel"):
        train_diffusion(tok, toy(channels=1), tmp_path / "x", SMALL)
    monkeypatch.undo()
    assert not (tmp_path / "x").exists()
    model = model_of(tok)
    with pytest.raises(IncompatibleInputError, match="unknown class 'three'"):
        model.sample(1, label="three")
    with pytest.raises(IncompatibleInputError, match="unconditional"):
        DiffusionModel(denoiser(tok, classes=0), tok, (), (8, 8)).sample(1, label=0)


def test_ctrl_c_saves_the_step_reached_and_resume_finishes_it(
    tok: GeolipImageTokenizer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from geolip.downstream import diffusion_train

    calls = {"n": 0}
    real = diffusion_train.masked_loss

    def interrupted(*args: object, **kwargs: object) -> torch.Tensor:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(diffusion_train, "masked_loss", interrupted)
    with pytest.raises(TrainingInterrupted) as info:
        train_diffusion(tok, toy(), tmp_path / "run", SMALL)
    assert info.value.step == 2
    monkeypatch.undo()
    whole = train_diffusion(tok, toy(), tmp_path / "whole", SMALL)
    resumed = train_diffusion(tok, toy(), tmp_path / "run", SMALL, resume=True)
    assert resumed.losses == whole.losses[2:]


def sizes(n: int = 8) -> list[ImageDataset]:
    """The same toy images at 8² (2 × 2 patches) and 16² (4 × 4 patches)."""
    small = toy(n)
    return [small, small.resized(16)]


def same_weights(a: AxisDenoiser, b: AxisDenoiser) -> bool:
    theirs = b.state_dict()
    return all(torch.equal(v.cpu(), theirs[k].cpu()) for k, v in a.state_dict().items())


def test_several_sizes_train_one_model_on_batches_of_one_size_each(
    tok: GeolipImageTokenizer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from geolip.downstream import diffusion_train

    seen: list[tuple[tuple[int, int], int]] = []
    real = diffusion_train.masked_loss

    def watched(
        net: AxisDenoiser, ids: torch.Tensor, grid: tuple[int, int], *rest: object
    ) -> torch.Tensor:
        seen.append((grid, ids.shape[1]))
        return real(net, ids, grid, *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(diffusion_train, "masked_loss", watched)
    run = train_diffusion(
        tok, sizes()[::-1], tmp_path / "dm", SMALL.model_copy(update={"steps": 8})
    )
    assert {grid for grid, _ in seen} == {(2, 2), (4, 4)}
    assert all(length == gh * gw * V for (gh, gw), length in seen)  # one length per batch
    assert run.model.train_size == (8, 8) == load_diffusion(tmp_path / "dm").train_size
    record = json.loads((tmp_path / "dm" / "diffusion_config.json").read_text())["training"]
    assert record["sizes"] == [[8, 8], [16, 16]]


@pytest.mark.slow
def test_several_sizes_are_deterministic_in_any_order(
    tok: GeolipImageTokenizer, tmp_path: Path
) -> None:
    a = train_diffusion(tok, sizes(), tmp_path / "a", SMALL)
    b = train_diffusion(tok, sizes()[::-1], tmp_path / "b", SMALL)
    assert a.losses == b.losses and same_weights(a.model.denoiser, b.model.denoiser)
    other = train_diffusion(tok, sizes(), tmp_path / "c", SMALL.model_copy(update={"seed": 1}))
    assert other.losses != a.losses


@pytest.mark.slow
def test_a_resumed_run_of_several_sizes_equals_an_uninterrupted_one(
    tok: GeolipImageTokenizer, tmp_path: Path
) -> None:
    config = SMALL.model_copy(update={"steps": 6, "checkpoint_every": 3})
    whole = train_diffusion(tok, sizes(), tmp_path / "whole", config)
    train_diffusion(tok, sizes(), tmp_path / "split", config.model_copy(update={"steps": 3}))
    resumed = train_diffusion(tok, sizes(), tmp_path / "split", config, resume=True)
    assert resumed.step == 6 and resumed.losses == whole.losses[3:]
    assert same_weights(whole.model.denoiser, load_diffusion(tmp_path / "split").denoiser)
    other = [toy(), toy().resized(12)]
    with pytest.raises(CheckpointError, match=r"another dataset \(toy at 8×8, 16×16\)"):
        train_diffusion(tok, other, tmp_path / "split", config, resume=True)
    with pytest.raises(CheckpointError, match="another dataset"):
        train_diffusion(tok, toy(), tmp_path / "split", config, resume=True)


def test_sizes_that_do_not_match_are_refused_before_any_work(
    tok: GeolipImageTokenizer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refuse_encoding(tok, monkeypatch)
    small = toy()
    renamed = ImageDataset.from_tensors("toy", small.resized(16).images, small.labels, "ab")
    cases = [
        ([small, renamed], r"share their classes: \('even', 'odd'\) at 8×8, \('a', 'b'\)"),
        ([small, toy(channels=1).resized(16)], "share their channels: 3 at 8×8, 1 at 16×16"),
        ([small, toy(n=4)], "two training datasets of one size, 8×8"),
        ([], "no training dataset"),
    ]
    for datasets, problem in cases:
        with pytest.raises(IncompatibleInputError, match=problem):
            train_diffusion(tok, datasets, tmp_path / "x", SMALL)
    assert not (tmp_path / "x").exists()


def test_device_cpu_given_explicitly_trains_as_the_default(
    tok: GeolipImageTokenizer, tmp_path: Path
) -> None:
    default = train_diffusion(tok, toy(), tmp_path / "a", SMALL)
    named = train_diffusion(tok, toy(), tmp_path / "b", SMALL, device="cpu")
    typed = train_diffusion(tok, toy(), tmp_path / "c", SMALL, device=torch.device("cpu"))
    assert default.losses == named.losses == typed.losses
    assert same_weights(default.model.denoiser, typed.model.denoiser)
    assert {p.device.type for p in named.model.denoiser.parameters()} == {"cpu"}


def distance(a: AxisDenoiser, b: dict[str, torch.Tensor]) -> float:
    """The Euclidean distance between a denoiser's weights and a state dict, on the CPU."""
    squares = (float((v.cpu() - b[k].cpu()).square().sum()) for k, v in a.state_dict().items())
    return math.sqrt(sum(squares))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_training_on_cuda_draws_as_on_the_cpu_and_resumes_a_cpu_checkpoint(
    tok: GeolipImageTokenizer, tmp_path: Path
) -> None:
    on_cpu = train_diffusion(tok, sizes(), tmp_path / "cpu", SMALL)
    whole = train_diffusion(tok, sizes(), tmp_path / "whole", SMALL, device="cuda")
    assert {p.device.type for p in whole.model.denoiser.parameters()} == {"cuda"}
    # the CPU generator draws the same sizes, batches and masks on every device; GPU
    # kernels round otherwise (and attention's backward is not deterministic there)
    assert whole.losses == pytest.approx(on_cpu.losses, rel=1e-3)
    train_diffusion(tok, sizes(), tmp_path / "split", SMALL.model_copy(update={"steps": 2}))
    resumed = train_diffusion(tok, sizes(), tmp_path / "split", SMALL, resume=True, device="cuda")
    assert resumed.losses == pytest.approx(on_cpu.losses[2:], rel=1e-3)
    torch.manual_seed(SMALL.seed)
    start = AxisDenoiser(on_cpu.model.denoiser.config).state_dict()
    travelled = distance(on_cpu.model.denoiser, start)
    assert distance(resumed.model.denoiser, on_cpu.model.denoiser.state_dict()) < travelled / 100
    # the checkpoint holds the GPU weights exactly, as CPU tensors
    assert same_weights(resumed.model.denoiser, load_diffusion(tmp_path / "split").denoiser)
