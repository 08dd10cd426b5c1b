"""The producer contract: every producer satisfies it, a new family plugs in through the
preset table and the loader only, and ``frozen()`` is the one way to run inference."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny_producer import PatchProjector, tiny_producer

from geolip.data import load_shapes
from geolip.downstream.features import compute_features
from geolip.errors import CheckpointError, IncompatibleInputError
from geolip.producers.battery_array import BatteryArray
from geolip.producers.contract import Geometry, Producer, Reconstructor, Trainable
from geolip.producers.extract import extract_codebook
from geolip.producers.loading import load_producer, require_producer
from geolip.producers.presets import PRESETS, build, get_preset, train_config
from geolip.producers.train import Trainer


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_builds_a_producer_whose_geometry_matches_its_rows(name: str) -> None:
    small = {
        "SphereSolver": {"hidden": 8, "depth": 0},
        "GLFM": {"width": 8, "hidden": 8, "n_anchors": 8, "n_blocks": 0},
    }.get(get_preset(name).model_class.__name__, {})
    model = build(name, seed=0, **small)
    assert isinstance(model, Producer) and model.preset == name
    g = model.geometry
    side = 2 * (g.patch_size or 1)
    if g.token_kind == "tokens":  # four tokens, as one-channel "images" (B, 1, T, F)
        m = model.encode_rows(torch.rand(2, 1, 4, g.token_dim))
    else:
        m = model.encode_rows(torch.rand(2, g.channels, side, side))
    assert m.shape == (2, 4, g.rows_per_token, g.D)
    assert torch.allclose(m.norm(dim=-1), torch.ones(()), atol=1e-5)


def test_build_is_seeded_and_leaves_the_global_rng_alone() -> None:
    state = torch.get_rng_state()
    a, b = build("h2", seed=3), build("h2", seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    assert a.producer_id == b.producer_id != build("h2", seed=4).producer_id


def test_frozen_restores_the_mode_even_when_the_body_raises() -> None:
    model = tiny_producer(0).train()
    with pytest.raises(RuntimeError, match="boom"), model.frozen() as m:
        assert not m.training and not torch.is_grad_enabled()
        raise RuntimeError("boom")
    assert model.training and torch.is_grad_enabled()
    model.eval()
    with model.frozen():
        pass
    assert not model.training


@pytest.mark.slow
def test_a_new_family_plugs_in_everywhere_through_preset_and_loader(tmp_path: Path) -> None:
    model = build("tiny-projector", seed=1)
    assert isinstance(model, PatchProjector) and isinstance(model, Producer)
    assert not isinstance(model, Reconstructor) and not isinstance(model, Trainable)
    cb = extract_codebook(model, "gaussian", n=6, size=8, null_trials=20)
    assert cb.dim == 3 and cb.meta.producer.kind == "patch_projector"
    controls = cb.meta.quality.controls  # gaussian calibration: no shuffle (i.i.d. pixels)
    assert [c.name for c in controls] == ["untrained", "other_calibration", "constant_input"]
    features = compute_features(model, cb, load_shapes(4, 8, seed=0).with_channels(1))
    assert features["hist"].shape == (4, cb.size)
    model.save_pretrained(tmp_path / "proj")
    loaded = load_producer(tmp_path / "proj")
    assert type(loaded) is PatchProjector and loaded.producer_id == model.producer_id
    with pytest.raises(TypeError, match="cannot be trained"):
        Trainer(model, train_config("h2"), tmp_path / "run")


def test_the_loader_refuses_unknown_classes_and_row_less_models(tmp_path: Path) -> None:
    folder = tiny_producer(0).save_pretrained(tmp_path / "m")
    config = folder / "config.json"
    config.write_text(config.read_text().replace('"SphereSolver"', '"Nonesuch"'))
    with pytest.raises(CheckpointError, match="'Nonesuch' is not one geolip knows"):
        load_producer(folder)
    array = BatteryArray.from_solvers([tiny_producer(0)], ["a"])
    loaded = load_producer(array.save_pretrained(tmp_path / "arr"))
    assert isinstance(loaded, BatteryArray) and not isinstance(loaded, Producer)
    with pytest.raises(IncompatibleInputError, match="emits no rows"):
        require_producer(loaded, "arr")
    with pytest.raises(ValueError, match="Hub repos only"):
        load_producer("pretrained:h2-gaussian", revision="main")


def test_geometry_refuses_inconsistent_shapes() -> None:
    with pytest.raises(ValueError, match="patch_size"):
        Geometry(D=4, rows_per_token=8, channels=3, patch_size=None)
    with pytest.raises(ValueError, match="D ≥ 2"):
        Geometry(D=1, rows_per_token=8, channels=3, patch_size=4)
