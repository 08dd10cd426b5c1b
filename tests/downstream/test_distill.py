import pytest
import torch

from geolip.downstream.distill import (
    DistillConfig,
    distill,
    probe_accuracy,
    row_moments,
    student_features,
)
from geolip.errors import IncompatibleInputError
from geolip.producers.loading import load_producer


def test_row_moments_ignore_row_signs_and_image_size():
    gen = torch.Generator().manual_seed(0)
    m = torch.nn.functional.normalize(torch.randn(2, 5, 3, 4, generator=gen), dim=-1)
    flips = torch.where(torch.rand(2, 5, 3, 1, generator=gen) < 0.5, -1.0, 1.0)
    assert row_moments(m).shape == (2, 3 * 10)
    assert torch.allclose(row_moments(m), row_moments(m * flips), atol=1e-7)
    bigger = torch.cat([m, m], dim=1)  # twice the patches, same per-patch rows
    assert torch.allclose(row_moments(m), row_moments(bigger), atol=1e-7)


def test_distillation_moves_the_student_towards_the_teacher():
    student = load_producer("pretrained:h2-gaussian")
    before = {k: v.clone() for k, v in student.state_dict().items()}
    gen = torch.Generator().manual_seed(1)
    images = torch.randn(16, 3, 16, 16, generator=gen)
    teacher = torch.randn(16, 8, generator=gen)
    result = distill(student, images, teacher, DistillConfig(steps=4, batch_size=8, target_dim=4))
    assert len(result.losses) == 4 and all(torch.isfinite(torch.tensor(result.losses)).flatten())
    assert any(not torch.equal(before[k], v) for k, v in student.state_dict().items())
    assert not student.training and result.head.out_features == 4
    with pytest.raises(IncompatibleInputError, match="mismatched pair counts"):
        distill(student, images, teacher[:10], DistillConfig(steps=1))


def test_student_features_have_one_shape_at_every_size():
    from geolip.data import load_shapes

    student = load_producer("pretrained:h2-gaussian")
    small = student_features(student, load_shapes(3, 16, seed=0))
    large = student_features(student, load_shapes(3, 32, seed=0))
    assert small.shape == large.shape == (3, 32 * 10)


def test_probe_accuracy_on_separable_data():
    gen = torch.Generator().manual_seed(2)
    y = torch.arange(60) % 3
    x = torch.nn.functional.one_hot(y, 3).double() + 0.05 * torch.randn(60, 3, generator=gen)
    assert probe_accuracy(x[:40], y[:40], x[40:], y[40:]) == 1.0
