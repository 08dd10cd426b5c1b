"""Producers: save_pretrained / from_pretrained / push_to_hub, locally and through the fake Hub."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from fake_hub import FakeHub
from huggingface_hub import HfApi, ModelCard
from strategies import gen

from geolip.errors import CheckpointError, HubIntegrityError
from geolip.hub import HubTarget, download_pretrained
from geolip.producers.battery_array import BatteryArray
from geolip.producers.checkpoint import TrainingState, save_checkpoint
from geolip.producers.loading import load_folder
from geolip.producers.sphere_solver import SphereSolver, SphereSolverConfig

REPO = "alice/solver"
TINY = SphereSolverConfig(V=6, D=4, patch_size=2, hidden=16, depth=1, n_cross=1)


def solver(seed: int = 0) -> SphereSolver:
    torch.manual_seed(seed)
    return SphereSolver(TINY, preset=None).eval()


def images() -> torch.Tensor:
    return torch.randn(2, 3, 6, 8, generator=gen(0))


def assert_same_model(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) and sa[k].dtype == sb[k].dtype for k in sa)


def assert_same_outputs(a: SphereSolver, b: SphereSolver) -> None:
    x = images()
    with torch.no_grad():
        assert torch.equal(a.encode_rows(x), b.encode_rows(x))
        assert torch.equal(a(x)["recon"], b(x)["recon"])


def test_save_pretrained_writes_the_checkpoint_layout_one_loader_reads(tmp_path: Path) -> None:
    model = solver()
    folder = model.save_pretrained(tmp_path / "pre")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    doc = json.loads((folder / "config.json").read_text())
    assert doc == {
        "model_class": "SphereSolver",
        "model": TINY.model_dump(mode="json"),
        "preset": None,
    }
    for loaded in (load_folder(folder), SphereSolver.from_pretrained(folder)):
        assert_same_model(loaded, model)
        assert_same_outputs(loaded, model)
    again = (folder / "model.safetensors").read_bytes()
    model.save_pretrained(folder)  # the same model, the same bytes; replacing is allowed
    assert (folder / "model.safetensors").read_bytes() == again

    # a training checkpoint (optimizer, RNG, counters) loads through the same door
    opt = torch.optim.Adam(model.parameters())
    model(images())["recon"].square().mean().backward()
    opt.step()
    state = TrainingState(
        model=model.state_dict(),
        optimizer=opt.state_dict(),
        rng={"cpu": torch.get_rng_state()},
        config={**doc, "step": 1},
    )
    ckpt = save_checkpoint(tmp_path / "ckpt", state)
    assert_same_model(SphereSolver.from_pretrained(ckpt), model)
    with pytest.raises(CheckpointError, match="not overwriting"):
        model.save_pretrained(tmp_path / "ckpt" / "model.safetensors")


def test_push_pull_round_trip_gives_the_same_state_dict_and_outputs(
    hub: FakeHub, tmp_path: Path
) -> None:
    model = solver()
    pushed = model.push_to_hub(REPO, endpoint=hub.endpoint)
    back = SphereSolver.from_pretrained(REPO, endpoint=hub.endpoint)
    assert_same_model(back, model)
    assert_same_outputs(back, model)
    assert not back.training

    other = solver(seed=1)
    second = other.push_to_hub(REPO, endpoint=hub.endpoint)
    assert_same_model(SphereSolver.from_pretrained(REPO, endpoint=hub.endpoint), other)
    pinned = SphereSolver.from_pretrained(REPO, revision=pushed.commit, endpoint=hub.endpoint)
    assert_same_model(pinned, model)
    assert second.commit != pushed.commit

    readme = HfApi(endpoint=hub.endpoint).hf_hub_download(REPO, "README.md", cache_dir=tmp_path)
    card = ModelCard.load(readme)
    info = other.producer_info()
    assert card.data.library_name == "geolip"
    assert card.data.geolip["weights_sha256"] == info.weights_sha256
    assert card.data.geolip["config_sha256"] == info.config_sha256


def test_battery_arrays_round_trip_and_a_wrong_class_is_refused(
    hub: FakeHub, tmp_path: Path
) -> None:
    array = BatteryArray.from_solvers([solver(0), solver(1)], ["a", "b"])
    array.push_to_hub("alice/array", endpoint=hub.endpoint)
    back = BatteryArray.from_pretrained("alice/array", endpoint=hub.endpoint)
    assert back.config == array.config
    assert_same_model(back, array)
    assert torch.equal(back.signature(images()), array.signature(images()))

    fetched = download_pretrained(
        HubTarget("alice/array", endpoint=hub.endpoint), tmp_path / "out", load_folder
    )
    assert isinstance(fetched.model, BatteryArray)
    for name in ("config.json", "model.safetensors"):
        assert (tmp_path / "out" / name).read_bytes() == (
            fetched.snapshot.folder / name
        ).read_bytes()

    with pytest.raises(CheckpointError, match=r"alice/array@[0-9a-f]{12}/config\.json"):
        SphereSolver.from_pretrained("alice/array", endpoint=hub.endpoint, cache_dir=tmp_path / "c")
    assert not [p for p in (tmp_path / "c").rglob("*") if p.is_file()]


def test_tampered_weights_are_refused_and_the_cache_serves_offline(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = solver()
    pushed = model.push_to_hub(REPO, endpoint=hub.endpoint)
    good = SphereSolver.from_pretrained(REPO, endpoint=hub.endpoint)
    raw = bytearray(hub.blobs[hub.resolve(REPO, "main")[1]["model.safetensors"].key])
    raw[-1] ^= 0x40
    hub.tamper(REPO, "model.safetensors", bytes(raw))
    with pytest.raises(HubIntegrityError, match=r"model\.safetensors"):
        SphereSolver.from_pretrained(REPO, endpoint=hub.endpoint, cache_dir=tmp_path / "fresh")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for revision in (None, pushed.commit):
        offline = SphereSolver.from_pretrained(REPO, revision=revision, endpoint=hub.endpoint)
        assert_same_model(offline, good)
