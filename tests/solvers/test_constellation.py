import pytest
import torch

from geolip.solvers.constellation import anchor_utilisation, nearest_anchor, repulsion_anchors


def test_anchors_are_unit_spread_and_seeded():
    a = repulsion_anchors(32, 8, seed=0)
    assert torch.allclose(a.norm(dim=1), torch.ones(32, dtype=torch.float64))
    cos = a @ a.T
    cos.fill_diagonal_(-1)
    assert cos.max() < 0.9  # no two anchors nearly coincide
    assert torch.equal(a, repulsion_anchors(32, 8, seed=0))


def test_a_collapsed_cloud_uses_one_anchor_and_uniform_rows_use_most():
    anchors = repulsion_anchors(16, 4, seed=0)
    gen = torch.Generator().manual_seed(1)
    cone = anchors[3] + 1e-3 * torch.randn(500, 4, generator=gen, dtype=torch.float64)
    collapsed = anchor_utilisation(cone, anchors, null_trials=5)
    assert collapsed.active == 1 and collapsed.max_share == 1.0
    assert collapsed.perplexity == pytest.approx(1.0)
    assert collapsed.null_active is not None and collapsed.null_active > 14
    uniform = anchor_utilisation(torch.randn(500, 4, generator=gen), anchors, null_trials=0)
    assert uniform.active == 16 and uniform.null_active is None


def test_nearest_anchor_is_signed_and_checks_shapes():
    anchors = torch.eye(2, dtype=torch.float64)
    assert nearest_anchor(torch.tensor([[-1.0, 0.1]]), anchors).tolist() == [1]
    with pytest.raises(ValueError, match="share d"):
        nearest_anchor(torch.randn(3, 3), anchors)
