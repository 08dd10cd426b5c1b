"""GLFM: the flow convention, the sampler, the constellation, the contract, training and resume,
and the anchor codebook beside its null."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from safetensors.torch import load_file

from geolip.errors import TrainingInterrupted
from geolip.producers.anchor_codebook import anchor_codebook
from geolip.producers.checkpoint import load_checkpoint
from geolip.producers.contract import Producer, TargetRegressor, Trainable
from geolip.producers.extract import extract_codebook
from geolip.producers.glfm import GLFM, GLFMConfig
from geolip.producers.loading import load_producer
from geolip.producers.presets import build, train_config
from geolip.producers.train import Trainer

TINY = {"width": 8, "hidden": 16, "n_anchors": 12, "n_blocks": 1, "D": 4, "image_size": 8}
TINY_TRAIN = {
    "batch_size": 4,
    "img_size": 8,
    "epochs": 2,
    "steps_per_epoch": 4,
    "eval_per_type": 1,
    "dataset": "shapes:n=48,size=8",
}


def tiny(seed: int = 0, preset: str = "glfm-v4", **overrides: object) -> GLFM:
    model = build(preset, seed=seed, **{**TINY, **overrides})
    assert isinstance(model, GLFM)
    return model


def batch(model: GLFM, n: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    c = model.config
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c.channels, c.image_size, c.image_size, generator=g)
    return x, torch.randint(c.n_classes, (n,), generator=g)


@pytest.mark.parametrize(
    ("preset", "lookup"),
    [("glfm-v1", "constellation"), ("glfm-v3", "constellation"), ("glfm-v4", "linear")],
)
def test_every_variant_maps_x_t_to_a_velocity_of_its_shape(preset: str, lookup: str) -> None:
    model = tiny(preset=preset, lookup=lookup)
    x, labels = batch(model)
    v = model(x, torch.rand(3), labels)
    assert v.shape == x.shape and torch.isfinite(v).all()
    v.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    assert isinstance(model, Producer) and isinstance(model, TargetRegressor)
    assert not isinstance(model, Trainable)


def test_training_pair_is_the_rectified_flow_line_and_its_velocity() -> None:
    model = tiny()
    x, labels = batch(model, n=5)
    (x_t, t, same_labels), target = model.training_pair(x, labels, torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)  # the same draws, in the documented order
    eps = torch.randn(x.shape, generator=g)
    t_ref = torch.rand(5, generator=g)
    assert torch.equal(t, t_ref) and torch.equal(same_labels, labels)
    tt = t_ref[:, None, None, None]
    torch.testing.assert_close(x_t, (1 - tt) * eps + tt * x)
    torch.testing.assert_close(target, x - eps)
    # the target is the constant velocity of the straight line: x_t + (1 − t)·v lands on x
    torch.testing.assert_close(x_t + (1 - tt) * target, x)


def test_euler_sampler_follows_the_training_convention_from_noise_to_data(monkeypatch) -> None:
    model = tiny()
    x_star, labels = batch(model, n=2, seed=3)

    def oracle(x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # the exact velocity towards one data point: (x* − x_t) / (1 − t), t = 0 is noise
        assert torch.equal(y, labels) and float(t.max()) < 1
        return (x_star - x_t) / (1 - t)[:, None, None, None]

    monkeypatch.setattr(model, "forward", oracle)
    torch.testing.assert_close(model.sample(labels, steps=5, seed=0), x_star)


def test_sampler_is_deterministic_under_its_seed_and_leaves_the_global_rng() -> None:
    model = tiny()
    labels = torch.tensor([0, 1, 5])
    before = torch.get_rng_state()
    a = model.sample(labels, steps=3, seed=11)
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.equal(a, model.sample(labels, steps=3, seed=11))
    assert not torch.equal(a, model.sample(labels, steps=3, seed=12))
    assert a.shape == (3, 3, 8, 8) and model.training  # mode restored


def test_bad_inputs_are_refused_naming_what_is_wrong() -> None:
    model = tiny()
    x, labels = batch(model)
    t = torch.rand(3)
    with pytest.raises(ValueError, match="expected 3 channels, got 1"):
        model(x[:, :1], t, labels)
    with pytest.raises(
        ValueError, match=r"class id 6 is out of range: this model has classes 0\.\.5"
    ):
        model(x, t, torch.tensor([0, 6, 1]))
    with pytest.raises(ValueError, match="class id -1"):
        model.training_pair(x, torch.tensor([0, -1, 1]), torch.Generator())
    with pytest.raises(ValueError, match="expected 8×8 images, got 16×16"):
        model(torch.zeros(3, 3, 16, 16), t, labels)
    with pytest.raises(ValueError, match="int64 class ids"):
        model(x, t, labels.float())
    with pytest.raises(ValueError, match="multiple of 4"):
        GLFMConfig(image_size=30)


def test_a_dataset_the_model_cannot_take_is_refused_before_any_step(tmp_path: Path) -> None:
    digits = train_config("glfm-v4", **{**TINY_TRAIN, "dataset": "digits:n=200,channels=3"})
    with pytest.raises(ValueError, match=r"class id [6-9] is out of range"):
        Trainer(tiny(), digits, tmp_path / "a")
    grey = train_config("glfm-v4", **{**TINY_TRAIN, "dataset": "shapes:n=48,channels=1"})
    with pytest.raises(ValueError, match="expected 3 channels, got 1"):
        Trainer(tiny(), grey, tmp_path / "b")
    with pytest.raises(ValueError, match="set dataset"):
        Trainer(tiny(), train_config("glfm-v4", **{**TINY_TRAIN, "dataset": None}), tmp_path)
    with pytest.raises(ValueError, match="dataset"):
        train_config("glfm-v4", dataset="shapes:size=0")
    assert not any(tmp_path.iterdir())  # nothing was written


@pytest.mark.slow
def test_anchors_stay_unit_while_the_free_parameter_drifts(tmp_path: Path) -> None:
    model = tiny()
    home = model.constellation.home.clone()
    trainer = Trainer(model, train_config("glfm-v4", **{**TINY_TRAIN, "lr": 0.05}), tmp_path)
    for _ in range(3):
        trainer.train_step()
    constellation = model.constellation
    raw = constellation.anchors.detach().norm(dim=1)
    assert (raw - 1).abs().max() > 1e-3  # Adam moved the parameter off the sphere ...
    torch.testing.assert_close(constellation.positions().norm(dim=1), torch.ones(12))
    torch.testing.assert_close(constellation.phase_points().norm(dim=-1), torch.ones(3, 12))
    assert torch.equal(constellation.home, home)  # ... and home is never trained
    drift = constellation.drift()
    assert (drift > 0).all() and (drift < torch.pi).all()
    cos = torch.nn.functional.cosine_similarity(constellation.anchors.double(), home.double())
    torch.testing.assert_close(drift, torch.acos(cos.clamp(-1, 1)), atol=1e-6, rtol=0)


def test_save_pretrained_and_checkpoints_load_through_load_producer(tmp_path: Path) -> None:
    model = tiny(seed=3, preset="glfm-v1").eval()
    x, labels = batch(model)
    t = torch.full((3,), 0.5)
    loaded = load_producer(model.save_pretrained(tmp_path / "saved"))
    assert isinstance(loaded, GLFM) and loaded.preset == "glfm-v1"
    assert loaded.config == model.config and loaded.producer_id == model.producer_id
    with torch.no_grad():
        assert torch.equal(loaded(x, t, labels), model(x, t, labels))
    images = torch.randn(2, 3, 20, 12)  # padded up to 8-pixel tiles: 3 × 2 tiles
    rows = loaded.encode_rows(images)
    assert rows.shape == (2, 6, 4, 4) and torch.equal(rows, model.encode_rows(images))
    torch.testing.assert_close(rows.norm(dim=-1), torch.ones(2, 6, 4))


def test_rows_go_through_extraction_with_the_usual_nulls() -> None:
    model = tiny().eval()
    cb = extract_codebook(model, "gaussian", n=4, size=16, null_trials=10, controls=False)
    assert cb.dim == 4 and cb.meta.extraction.n_rows == 4 and cb.meta.quality.null is not None


def run(out: Path, resume: bool = False, **overrides: object) -> Trainer:
    trainer = Trainer(
        tiny(), train_config("glfm-v4", **{**TINY_TRAIN, **overrides}), out, resume=resume
    )
    trainer.fit(progress=False)
    return trainer


@pytest.mark.slow
def test_ctrl_c_then_resume_equals_the_uninterrupted_run(tmp_path: Path, monkeypatch) -> None:
    full = run(tmp_path / "full", save_every=3)
    last = full.history[-1]
    assert last["step"] == 8 and last["mse"] > 0 and -1 <= last["velocity_cos"] <= 1
    assert last["anchor_drift"]["n_anchors"] == 12 and sum(last["anchor_drift"]["counts"]) == 12
    real_step = Trainer.train_step

    def interrupted_step(self: Trainer) -> torch.Tensor:
        if self.step == 5:
            raise KeyboardInterrupt
        return real_step(self)

    monkeypatch.setattr(Trainer, "train_step", interrupted_step)
    with pytest.raises(TrainingInterrupted):
        run(tmp_path / "cut", save_every=3)
    monkeypatch.setattr(Trainer, "train_step", real_step)
    assert load_checkpoint(tmp_path / "cut" / "latest").config["step"] == 5
    resumed = run(tmp_path / "cut", resume=True, save_every=3)
    a = load_file(tmp_path / "full" / "latest" / "model.safetensors")
    b = load_file(tmp_path / "cut" / "latest" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.history == full.history
    assert isinstance(load_producer(tmp_path / "cut" / "best"), GLFM)


def test_anchor_codebook_carries_its_null_and_the_home_control() -> None:
    model = tiny()
    cb = anchor_codebook(model, null_trials=20, distance_null_trials=2)
    q = cb.meta.quality
    assert cb.meta.extraction.calibration == "anchors" and cb.meta.extraction.n_rows == 12
    assert q.null.kind == "rows" and q.null.n_trials == 20 and 0 <= q.null.percentile <= 100
    assert cb.size + cb.meta.extraction.n_pairs == 12
    torch.testing.assert_close(cb.axes.norm(dim=1), torch.ones(cb.size))
    (home,) = q.controls
    assert home.name == "untrained" and home.distance_to_observed < 1e-6  # not trained yet
    assert {s.name for s in q.controls_skipped} == {
        "other_calibration",
        "constant_input",
        "shuffled_calibration",
    }
    assert cb.stats["drift"].abs().max() < 1e-6
    with pytest.raises(TypeError, match="no anchor constellation"):
        anchor_codebook(tiny(lookup="linear"))


_SIGNS = st.lists(st.sampled_from([-1.0, 1.0]), min_size=8, max_size=8)


@pytest.mark.slow
@given(signs=_SIGNS, seed=st.integers(0, 2**16))
def test_anchor_codebook_is_invariant_to_anchor_signs_that_keep_the_pairs(
    signs: list[float], seed: int
) -> None:
    """Anchors are projective points: flipping any anchor's sign gives the same codebook, as
    long as each antipodal pair is flipped together (flipping one member of a pair makes the two
    parallel, and upstream's collapse merges antipodes only)."""
    g = torch.Generator().manual_seed(seed)
    base = torch.linalg.qr(torch.randn(6, 6, generator=g, dtype=torch.float64)).Q  # separated
    pairs = -base[:2] + 0.05 * torch.randn(2, 6, generator=g, dtype=torch.float64)
    rows = torch.cat([base, pairs])  # rows 0↔6 and 1↔7 are antipodal pairs
    group = torch.tensor([0, 1, 2, 3, 4, 5, 0, 1])  # a pair shares one sign
    flipped = rows * torch.tensor(signs, dtype=torch.float64)[group, None]
    codebooks = []
    for anchors in (rows, flipped):
        model = tiny(n_anchors=8, D=6)
        with torch.no_grad():
            model.constellation.anchors.copy_(anchors)
            model.constellation.home.copy_(anchors)
        codebooks.append(anchor_codebook(model, null_trials=10, controls=False))
    a, b = codebooks
    assert a.meta.extraction.n_pairs == 2 and a.size == 6
    assert a.id == b.id and torch.equal(a.axes, b.axes)
