"""The producers shipped inside the package: present, loadable offline, and actually trained."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from cli_runner import run_json
from shipped_defaults import FAMILY_DEFAULTS, family_outputs, images

from geolip import Codebook
from geolip.data import open_dataset
from geolip.data.noise import calibration_set, noise_batch
from geolip.errors import CheckpointNotFoundError
from geolip.producers.extract import extract_codebook
from geolip.producers.glfm import GLFM
from geolip.producers.loading import load_producer, pretrained_dir, pretrained_names
from geolip.producers.presets import build
from geolip.producers.pretrained import PretrainedModule


def test_the_shipped_producers_are_listed() -> None:
    assert {"h2-gaussian", "freckles", *FAMILY_DEFAULTS} <= set(pretrained_names())


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


@pytest.mark.parametrize("name", sorted(FAMILY_DEFAULTS))
def test_each_family_default_has_its_documented_config_and_finite_outputs(
    name: str, tmp_path: Path
) -> None:
    preset, fields, n_params = FAMILY_DEFAULTS[name]
    model = load_producer(f"pretrained:{name}")
    expected = build(preset, **fields)
    assert type(model) is type(expected) and model.config == expected.config
    assert model.preset == preset and not model.training
    assert sum(p.numel() for p in model.parameters()) == n_params
    assert all(p.dtype == torch.float32 for p in model.parameters())
    x = images(2, 32)
    out = family_outputs(model, x)
    g = model.geometry
    tiles = (32 // g.patch_size) ** 2
    assert out["rows"].shape == (2, tiles, g.rows_per_token, g.D)
    torch.testing.assert_close(out["rows"].norm(dim=-1), torch.ones(out["rows"].shape[:-1]))
    (output,) = (v for k, v in out.items() if k != "rows")
    assert output.shape == x.shape
    assert all(torch.isfinite(v).all() for v in out.values())
    # the shipped file is exactly what save_pretrained writes for these weights
    saved = model.save_pretrained(tmp_path / name) / "model.safetensors"
    assert saved.read_bytes() == (pretrained_dir() / name / "model.safetensors").read_bytes()


TRAINED_ON = {"svae-gaussian": "gaussian", "cv-battery-noise": "sixteen_noise"}


def _task_loss(model: PretrainedModule, name: str) -> float:
    """What the family was trained to lower, on held-out data of its training distribution."""
    if isinstance(model, GLFM):
        shapes = open_dataset("shapes:n=32,size=32,seed=7")
        gen = torch.Generator().manual_seed(0)
        return model.validation_metrics(shapes.images, shapes.labels, gen)["mse"]
    x, _ = calibration_set(TRAINED_ON[name], 16, size=16, seed=7)
    with model.frozen():
        return torch.nn.functional.mse_loss(model.reconstruct(x), x).item()


@pytest.mark.parametrize("name", sorted(FAMILY_DEFAULTS))
def test_each_family_default_does_its_job_better_than_its_untrained_twin(name: str) -> None:
    model = load_producer(f"pretrained:{name}")
    assert _task_loss(model, name) < 0.9 * _task_loss(model.untrained_twin(seed=0), name)


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("glfm-shapes", ["--calibration", "shapes:n=4,size=32"]),
        ("glfm-shapes", ["--method", "anchors"]),
        ("svae-gaussian", ["--calibration", "gaussian", "--n", "4", "--size", "16"]),
        ("cv-battery-noise", ["--n", "2", "--size", "8", "--method", "kmeans", "--k", "8"]),
        pytest.param("cv-battery-noise", ["--n", "4", "--size", "16"], marks=pytest.mark.slow),
    ],
)
def test_codebook_extract_reads_each_family_default(
    name: str, options: list[str], tmp_path: Path, capsys, monkeypatch
) -> None:
    out = tmp_path / "cb"
    args = ["codebook", "extract", f"pretrained:{name}", *options, "--null-trials", "10"]
    if "kmeans" in options:
        args += ["--restarts", "1", "--kmeans-null-trials", "2"]
    code, doc = run_json([*args, "--out", str(out)], capsys, monkeypatch)
    assert code == 0
    cb = Codebook.load(out)
    model = load_producer(f"pretrained:{name}")
    assert doc["id"] == cb.id and cb.dim == model.geometry.D
    assert doc["producer"]["weights_sha256"] == model.producer_info().weights_sha256
    assert doc["quality"]["null"]["n_trials"] == 10
    if "kmeans" not in options:  # k-means reports its own null instead of the controls
        assert "untrained" in [c["name"] for c in doc["quality"]["controls"]]
