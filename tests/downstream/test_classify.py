"""Heads on frozen features: learn an easy task, transfer across resolutions, save and load."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny_producer import tiny_codebook, tiny_producer

from geolip.data import ImageDataset, noise_dataset
from geolip.downstream.classify import fit_head, load_head, save_head, train_head
from geolip.downstream.features import compute_features
from geolip.errors import CheckpointError, CheckpointNotFoundError, IncompatibleInputError

KINDS = ("gaussian", "checkerboard", "gradient")


def noise_task(n_per: int, size: int, seed: int) -> ImageDataset:
    """Three noise families as three classes: easy for frozen features."""
    parts = [noise_dataset(k, n_per, size, seed=seed).images for k in KINDS]
    labels = torch.arange(len(KINDS)).repeat_interleave(n_per)
    return ImageDataset.from_tensors("noise-task", torch.cat(parts), labels, KINDS).shuffled(seed)


@pytest.fixture(scope="module")
def setup():
    producer = tiny_producer(0)
    codebook = tiny_codebook(producer)
    train = compute_features(producer, codebook, noise_task(60, 16, seed=0), ("mean", "map"))
    return producer, codebook, train


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_head_learns_an_easy_task_and_transfers_across_resolutions(setup, kind) -> None:
    producer, codebook, train = setup
    trained = train_head(train, "mean", classes=KINDS, kind=kind, epochs=60)
    assert trained.info.train_accuracy >= 0.95
    for size in (16, 32):
        test = compute_features(producer, codebook, noise_task(20, size, seed=1), ("mean",))
        assert trained.accuracy(test) >= 0.85, size  # chance: 1/3


def test_map_head_takes_any_grid(setup) -> None:
    producer, codebook, train = setup
    trained = train_head(train, "map", classes=KINDS, epochs=60, pool_grid=(2, 2))
    test = compute_features(producer, codebook, noise_task(10, 32, seed=2), ("map",))
    assert test["map"].shape[2:] == (8, 8) and trained.predict(test).shape == (30, 3)
    assert trained.accuracy(test) >= 0.8


def test_fit_is_reproducible_from_its_seed() -> None:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(50, 6, generator=g), torch.randint(0, 2, (50,), generator=g)
    a, b = fit_head(x, y, 2, epochs=5, seed=3), fit_head(x, y, 2, epochs=5, seed=3)
    assert torch.equal(a(x), b(x))
    assert not torch.equal(a(x), fit_head(x, y, 2, epochs=5, seed=4)(x))


def test_save_load_round_trip_and_refusals(setup, tmp_path: Path) -> None:
    _producer, _codebook, train = setup
    trained = train_head(train, "mean", classes=KINDS, kind="mlp", hidden=8, epochs=2)
    path = save_head(trained, tmp_path / "head.safetensors")
    loaded = load_head(path)
    assert loaded.info == trained.info
    assert torch.equal(loaded.predict(train), trained.predict(train))
    with pytest.raises(CheckpointNotFoundError):
        load_head(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match=r"junk\.safetensors"):
        load_head(tmp_path / "junk.safetensors")


def test_features_of_another_producer_are_refused(setup) -> None:
    _, codebook, train = setup
    trained = train_head(train, "mean", classes=KINDS, epochs=1)
    other = tiny_producer(5)
    foreign = compute_features(other, codebook, noise_task(2, 16, seed=0), ("mean",))
    with pytest.raises(IncompatibleInputError, match="trained on producer"):
        trained.accuracy(foreign)
    with pytest.raises(KeyError, match="hist"):
        train_head(train, "hist")


def test_a_one_class_training_set_is_refused(setup) -> None:
    """Before, a head trained on one class reported a train accuracy of 1."""
    producer, codebook, _ = setup
    one_class = ImageDataset.from_tensors(
        "one",
        noise_dataset("gaussian", 8, 16, seed=0).images,
        torch.zeros(8, dtype=torch.long),
        ("a",),
    )
    features = compute_features(producer, codebook, one_class, ("mean",))
    with pytest.raises(IncompatibleInputError, match=r"at least two classes.*only class 0"):
        train_head(features, "mean", epochs=1)


def test_accuracy_report_states_chance_and_an_interval() -> None:
    from geolip.downstream.classify import AccuracyReport

    labels = torch.tensor([0] * 70 + [1] * 30)
    constant = AccuracyReport.of(torch.zeros(100, dtype=torch.long), labels)
    assert constant.accuracy == 0.7 and constant.chance == 0.7
    assert constant.above_chance == "inconclusive"  # a constant guess is not above chance
    perfect = AccuracyReport.of(labels.clone(), labels)
    assert perfect.interval[1] == 1.0 and perfect.interval[0] > 0.9
    assert perfect.above_chance == "holds"
    inverted = AccuracyReport.of(1 - labels, labels)
    assert inverted.accuracy == 0.0 and inverted.above_chance == "fails"
