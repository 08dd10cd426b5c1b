"""Pooled features: shapes at every resolution, invariances, the on-disk cache, bad inputs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from tiny_producer import tiny_codebook, tiny_producer

from geolip.codebook import Codebook
from geolip.data import ImageDataset, load_digits, load_shapes
from geolip.downstream.features import (
    compute_features,
    encode_activations,
    pool_activations,
)
from geolip.errors import DatasetError, IncompatibleInputError
from geolip.producers.sphere_solver import SphereSolver


@pytest.fixture(scope="module")
def producer():
    return tiny_producer(0)


@pytest.fixture(scope="module")
def codebook(producer):
    return tiny_codebook(producer)


class Counting(torch.nn.Module):
    """Wraps a producer and counts its encode_rows calls; the rest of the contract is the
    wrapped producer's."""

    def __init__(self, inner: SphereSolver) -> None:
        super().__init__()
        self.inner = inner
        self.config = inner.config
        self.calls = 0
        self.geometry, self.device = inner.geometry, inner.device
        self.producer_id, self.producer_info = inner.producer_id, inner.producer_info
        self.untrained_twin, self.frozen = inner.untrained_twin, inner.frozen

    def encode_rows(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.inner.encode_rows(x)


def test_feature_shapes_do_not_depend_on_resolution(producer, codebook) -> None:
    k, v = codebook.size, producer.config.V
    for size, grid in ((16, (4, 4)), (30, (8, 8)), (64, (16, 16))):
        ds = load_shapes(5, size, seed=0)
        f = compute_features(producer, codebook, ds, ("mean", "hist", "map"), batch_size=2)
        assert f["mean"].shape == (5, v, k) and f["hist"].shape == (5, k)
        assert f["map"].shape == (5, k, *grid) and f.grid == grid
        assert torch.allclose(f["hist"].sum(dim=1), torch.ones(5))
        assert f["mean"].min() >= 0 and f["mean"].max() <= 1
        assert torch.equal(f.labels, ds.labels)


def test_pooling_matches_its_definition(producer, codebook) -> None:
    x = load_shapes(3, 16, seed=1).images
    a = encode_activations(producer, codebook, x)  # (B, P, V, K)
    pooled = pool_activations(a, ("mean", "hist", "map"), (4, 4))
    assert torch.allclose(pooled["mean"], a.mean(dim=1))
    codes = a.argmax(dim=-1)
    for b in range(3):
        counts = torch.bincount(codes[b].flatten(), minlength=codebook.size).float()
        assert torch.allclose(pooled["hist"][b], counts / codes[b].numel())
    # raster order: patch p = row·gw + col
    assert torch.allclose(pooled["map"][:, :, 1, 2], a[:, 1 * 4 + 2].mean(dim=1))


def test_features_do_not_depend_on_batch_size(producer, codebook) -> None:
    ds = load_shapes(7, 16, seed=2)
    one = compute_features(producer, codebook, ds, batch_size=1)
    many = compute_features(producer, codebook, ds, batch_size=7)
    assert torch.allclose(one["mean"], many["mean"], atol=1e-6)


@given(seed=st.integers(0, 2**16))
def test_pooled_features_ignore_signs_of_rows_and_axes(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    rows = torch.nn.functional.normalize(torch.randn(2, 6, 5, 4, generator=g), dim=-1)
    axes = torch.randn(7, 4, generator=g, dtype=torch.float64)
    flips = torch.where(torch.rand(7, 1, generator=g) < 0.5, -1.0, 1.0).double()
    row_flips = torch.where(torch.rand(2, 6, 5, 1, generator=g) < 0.5, -1.0, 1.0)
    a, b = Codebook.from_axes(axes), Codebook.from_axes(axes * flips)
    assert a.id == b.id
    base = pool_activations(a.activations(rows), ("mean", "hist", "map"), (2, 3))
    flipped = pool_activations(b.activations(rows * row_flips), ("mean", "hist", "map"), (2, 3))
    for kind in base:
        assert torch.allclose(base[kind], flipped[kind], atol=1e-6)


def test_second_run_reads_the_cache_without_running_the_producer(
    producer, codebook, tmp_path: Path
) -> None:
    ds = load_shapes(6, 16, seed=3)
    counting = Counting(producer)
    first = compute_features(counting, codebook, ds, cache_dir=tmp_path, batch_size=2)
    assert counting.calls == 3 and not first.from_cache and first.path.is_file()
    second = compute_features(counting, codebook, ds, cache_dir=tmp_path, batch_size=2)
    assert counting.calls == 3 and second.from_cache and second.key == first.key
    assert torch.equal(first["mean"], second["mean"]) and torch.equal(first["hist"], second["hist"])
    # a different dataset, codebook or kind set is a different key
    other = compute_features(counting, codebook, ds.subset([0, 1]), cache_dir=tmp_path)
    random = Codebook.random(codebook.size, 4, seed=9)
    third = compute_features(counting, random, ds, cache_dir=tmp_path)
    assert len({first.key, other.key, third.key}) == 3 and counting.calls == 5


def test_damaged_cache_is_recomputed(producer, codebook, tmp_path: Path) -> None:
    ds = load_shapes(4, 16, seed=4)
    good = compute_features(producer, codebook, ds, cache_dir=tmp_path)
    good.path.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="unreadable feature cache"):
        again = compute_features(producer, codebook, ds, cache_dir=tmp_path)
    assert not again.from_cache and torch.equal(again["mean"], good["mean"])
    assert compute_features(producer, codebook, ds, cache_dir=tmp_path).from_cache
    assert not list(tmp_path.glob(".*tmp*"))  # atomic writes leave no temporaries


def test_changing_weights_changes_the_producer_id(producer) -> None:
    other = tiny_producer(1)
    assert other.producer_id != producer.producer_id
    assert tiny_producer(0).producer_id == producer.producer_id


def test_bad_inputs_are_refused_before_any_encoding(producer, codebook) -> None:
    counting = Counting(producer)
    grey = load_digits(4)
    with pytest.raises(IncompatibleInputError, match="1 channel"):
        compute_features(counting, codebook, grey)
    with pytest.raises(IncompatibleInputError, match="smaller than one 4×4 patch"):
        compute_features(counting, codebook, load_shapes(2, 3))
    with pytest.raises(IncompatibleInputError, match="D=3"):
        compute_features(counting, Codebook.random(5, 3), load_shapes(2, 16))
    empty = ImageDataset.from_tensors("empty", torch.zeros(0, 3, 16, 16), [], ("a",))
    with pytest.raises(DatasetError, match="empty"):
        compute_features(counting, codebook, empty)
    with pytest.raises(ValueError, match="unknown feature kind"):
        compute_features(counting, codebook, load_shapes(2, 16), ("mean", "max"))  # type: ignore[arg-type]
    assert counting.calls == 0
