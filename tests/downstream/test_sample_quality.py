"""Sample-quality statistics: exact values on constructed samples, and the permutation null."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from geolip.downstream.sample_quality import (
    class_pixel_statistics,
    classifier_report,
    predict,
    summarise_classes,
)

K = 3


def _reference() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(K).repeat_interleave(20)
    images = torch.randn(labels.numel(), 2, 5, 5, generator=gen) + 2.0 * labels[:, None, None, None]
    return images, labels


def test_samples_equal_to_the_reference_sit_at_distance_zero_in_their_own_class() -> None:
    x, y = _reference()
    rows = class_pixel_statistics(x, y, x, y, K)
    for c, row in enumerate(rows):
        assert row["mean_image_mse"] == pytest.approx(0.0, abs=1e-12)
        assert row["nearest_class"] == c
        assert row["samples_diversity"] == pytest.approx(row["reference_diversity"])
        # class means are 2 apart per step: the other classes' mean images sit near 4 or 16 away
        assert row["between_class_mse"] > 1.0
    assert summarise_classes(rows)["nearest_is_own"] == 1.0


def test_a_constant_shift_shows_as_intensity_and_squared_distance_not_as_contrast() -> None:
    x, y = _reference()
    rows = class_pixel_statistics(x + 0.5, y, x, y, K)
    for row in rows:
        assert row["mean_image_mse"] == pytest.approx(0.25)
        assert row["samples_intensity"] - row["reference_intensity"] == pytest.approx(0.5)
        assert row["samples_contrast"] == pytest.approx(row["reference_contrast"])


def test_identical_samples_have_no_diversity_and_a_swapped_class_is_found_nearest() -> None:
    x, y = _reference()
    means = torch.stack([x[y == c].mean(0) for c in range(K)])
    samples = means[(y + 1) % K]  # every sample of class c is the mean image of class c + 1
    rows = class_pixel_statistics(samples, y, x, y, K)
    assert [r["nearest_class"] for r in rows] == [1, 2, 0]
    assert all(r["samples_diversity"] == pytest.approx(0.0, abs=1e-12) for r in rows)
    assert summarise_classes(rows)["nearest_is_own"] == 0.0


def test_too_few_images_of_a_class_are_refused() -> None:
    x, y = _reference()
    with pytest.raises(ValueError, match="fewer than two"):
        class_pixel_statistics(x[:21], y[:21], x, y, K)


class _Oracle(nn.Module):
    """Logits whose argmax is the image's first pixel rounded, clamped to the classes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ids = x[:, 0, 0, 0].round().long().clamp(0, K - 1)
        return nn.functional.one_hot(ids, K).float()


def test_predictions_that_follow_the_labels_beat_the_permutation_null() -> None:
    y = torch.arange(K).repeat_interleave(50)
    x = y[:, None, None, None].float().expand(-1, 1, 4, 4).clone()
    x[:15] = 2.0  # 15 of class 0 predicted as class 2
    p = predict(_Oracle(), x, batch_size=7)
    report = classifier_report(p, y, K, null_trials=200)
    assert report["accuracy"] == pytest.approx(135 / 150)
    assert report["per_class"] == pytest.approx([35 / 50, 1.0, 1.0])
    assert report["predicted_share"] == pytest.approx([35 / 150, 50 / 150, 65 / 150])
    assert abs(report["null_mean"] - 1 / K) < 0.02
    assert report["null_percentile"] == 1.0


def test_a_constant_prediction_scores_chance_on_balanced_labels() -> None:
    y = torch.arange(K).repeat_interleave(40)
    report = classifier_report(torch.zeros_like(y), y, K, null_trials=50)
    assert report["accuracy"] == pytest.approx(1 / K)
    assert report["null_mean"] == pytest.approx(1 / K)  # every permutation scores the same
    assert report["null_percentile"] == 0.0
