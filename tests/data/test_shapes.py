"""Procedural shapes: deterministic scenes, balanced classes, one scene at every resolution."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.nn.functional import avg_pool2d

from geolip.data import load_shapes
from geolip.data.shapes import SHAPE_KINDS, draw_scenes, render_scenes, select
from geolip.errors import DatasetError


def test_same_seed_same_images_other_seed_other_images() -> None:
    a, b = load_shapes(24, 32, seed=3), load_shapes(24, 32, seed=3)
    assert torch.equal(a.images, b.images) and a.captions == b.captions
    assert a.fingerprint == b.fingerprint
    c = load_shapes(24, 32, seed=4)
    assert not torch.equal(a.images, c.images) and a.fingerprint != c.fingerprint


def test_classes_are_balanced_and_images_in_range() -> None:
    ds = load_shapes(60, 24, seed=0)
    assert ds.classes == SHAPE_KINDS
    assert torch.bincount(ds.labels, minlength=6).tolist() == [10] * 6
    x = ds.images
    assert x.shape == (60, 3, 24, 24) and x.dtype == torch.float32
    assert x.min() >= 0 and x.max() <= 1


def test_captions_name_kind_and_colour() -> None:
    ds = load_shapes(12, 16, seed=1)
    assert ds.captions is not None and len(ds.captions) == 12
    for caption, label in zip(ds.captions, ds.labels.tolist(), strict=True):
        assert f" {SHAPE_KINDS[label]} " in caption and caption.endswith("background")


def test_every_kind_draws_its_own_silhouette() -> None:
    scenes = draw_scenes(6, seed=0)
    centred = scenes.__class__(
        kind=torch.arange(6),
        foreground=torch.zeros(6, dtype=torch.long),
        background=torch.zeros(6, dtype=torch.long),
        centre=torch.full((6, 2), 0.5, dtype=torch.float64),
        radius=torch.full((6,), 0.3, dtype=torch.float64),
        angle=torch.zeros(6, dtype=torch.float64),
        kinds=SHAPE_KINDS,
    )
    masks = render_scenes(centred, 64)[:, 0] > 0.5  # red channel: foreground red on black
    areas = masks.float().mean(dim=(1, 2))
    assert (areas > 0.03).all() and (areas < 0.35).all()
    # ring has a hole, circle has none
    assert masks[0, 32, 32] and not masks[3, 32, 32]
    flat = masks.flatten(1).float()
    inter = flat @ flat.T
    iou = inter / (flat.sum(dim=1, keepdim=True) + flat.sum(dim=1) - inter)
    assert (iou - torch.eye(6)).max() < 0.9  # no two kinds are the same picture


@given(seed=st.integers(0, 2**16), factor=st.sampled_from([2, 4, 8]))
def test_scene_renders_consistently_across_resolutions(seed: int, factor: int) -> None:
    """Averaging a rendering at s·f down by f gives the rendering at s, up to edge filtering."""
    scenes = draw_scenes(4, seed)
    low = render_scenes(scenes, 32)
    high = avg_pool2d(render_scenes(scenes, 32 * factor), factor)
    diff = (high - low).abs()
    assert diff.mean() < 2e-3 and diff.max() < 0.35


def test_any_shape_renders_and_subsets_select() -> None:
    scenes = draw_scenes(5, seed=2)
    wide = render_scenes(scenes, (20, 40))
    assert wide.shape == (5, 3, 20, 40)
    # the scene square sits in the middle: the side bands are pure background
    assert torch.allclose(wide[:, :, :, :5], wide[:, :, :1, :1].expand(-1, -1, 20, 5))
    picked = render_scenes(select(scenes, torch.tensor([3, 1])), 16)
    assert torch.equal(picked, render_scenes(scenes, 16)[[3, 1]])


def test_bad_requests_are_refused() -> None:
    with pytest.raises(DatasetError, match="shape kinds"):
        draw_scenes(4, kinds=("circle", "hexagon"))
    with pytest.raises(DatasetError, match="n >= 1"):
        load_shapes(0)
    with pytest.raises(DatasetError, match="cannot render"):
        render_scenes(draw_scenes(1), 0)
