"""The producers shipped inside the package: present, loadable offline, and actually trained."""

from __future__ import annotations

import pytest
import torch

from geolip.data.noise import noise_batch
from geolip.errors import CheckpointNotFoundError
from geolip.producers.extract import extract_codebook
from geolip.producers.loading import load_producer, pretrained_names
from geolip.producers.presets import build


def test_the_shipped_producers_are_listed() -> None:
    assert {"h2-gaussian", "freckles"} <= set(pretrained_names())


@pytest.mark.parametrize(
    ("name", "preset", "trained_on", "mse_below"),
    [("h2-gaussian", "h2", "gaussian", 6e-3), ("freckles", "freckles", "laplace", 6e-3)],
)
@torch.no_grad()
def test_shipped_weights_reconstruct_far_better_than_a_fresh_init(
    name: str, preset: str, trained_on: str, mse_below: float
) -> None:
    model = load_producer(f"pretrained:{name}")
    assert model.param_count() == build(preset).param_count()
    x = noise_batch(trained_on, 4, 32, generator=torch.Generator().manual_seed(5))
    torch.manual_seed(0)
    fresh = build(preset).eval()
    mse = torch.nn.functional.mse_loss(model(x)["recon"], x).item()
    fresh_mse = torch.nn.functional.mse_loss(fresh(x)["recon"], x).item()
    assert mse < mse_below < fresh_mse


@pytest.mark.slow
def test_extract_from_a_shipped_producer_needs_no_training() -> None:
    cb = extract_codebook(load_producer("pretrained:h2-gaussian"), "gaussian", n=8, null_trials=20)
    assert cb.dim == 4 and 1 <= cb.size <= 32
    assert cb.meta.producer is not None and cb.meta.quality.controls


def test_unknown_pretrained_name_lists_the_known_ones() -> None:
    with pytest.raises(CheckpointNotFoundError, match="h2-gaussian"):
        load_producer("pretrained:nope")
