"""Validity engine and baselines on a tiny producer: the batch's own codebook against the
reference, conformal confidence, Mahalanobis and kNN by hand, bad inputs."""

from __future__ import annotations

import pytest
import torch
from tiny_producer import tiny_codebook, tiny_producer

from geolip.codebook import Codebook
from geolip.data import noise_dataset
from geolip.data.noise import calibration_set
from geolip.downstream.ood import ValidityScorer
from geolip.downstream.ood_baselines import KNN, Mahalanobis, MSERatio, reconstruction_mse
from geolip.downstream.ood_eval import OOD_METHODS, evaluate_ood, fit_detectors
from geolip.errors import DatasetError, IncompatibleInputError


@pytest.fixture(scope="module")
def engine() -> ValidityScorer:
    producer = tiny_producer(0)
    return ValidityScorer(producer, tiny_codebook(producer), null_trials=8)


def test_in_distribution_batch_is_close_to_its_reference(engine) -> None:
    same, _ = calibration_set("gaussian", 32, 16, seed=0)  # the reference's own images
    v = engine.validity_score(same)
    assert v.distance < 1e-6 and v.n_images == 32
    fresh = engine.validity_score(noise_dataset("gaussian", 32, 16, seed=5))
    far = engine.validity_score(noise_dataset("checkerboard", 32, 16, seed=5))
    assert fresh.distance < far.distance
    assert fresh.z_score is not None and fresh.z_score < far.z_score
    assert fresh.null_mean_deg > fresh.mean_residual_deg


def test_input_codebook_is_the_extraction_path(engine) -> None:
    images, _ = calibration_set("gaussian", 32, 16, seed=0)
    own = engine.input_codebook(images)  # the same axes; the reference also carries stats
    assert torch.allclose(own.axes, engine.reference.axes, atol=1e-6)


@pytest.mark.slow
def test_image_distances_and_conformal_confidence(engine) -> None:
    calibrated = engine.calibrate(noise_dataset("gaussian", 24, 16, seed=1))
    assert calibrated.id_distances.shape == (24,) and calibrated.native_mse > 0
    assert torch.all(calibrated.id_distances[1:] >= calibrated.id_distances[:-1])
    ref = calibrated.id_distances
    conf = calibrated.confidence(torch.tensor([ref[0] - 1, ref[-1] + 1, ref[12]]))
    assert conf.tolist() == pytest.approx([25 / 25, 1 / 25, 13 / 25])
    x = noise_dataset("gradient", 4, 16, seed=2).images
    recon, confidence = calibrated.predict_with_confidence(x)
    assert recon.shape == x.shape and confidence.shape == (4,)
    assert ((confidence > 0) & (confidence <= 1)).all()
    with pytest.raises(RuntimeError, match="calibrate"):
        engine.predict_with_confidence(x)


def test_bad_inputs_are_refused(engine) -> None:
    with pytest.raises(IncompatibleInputError, match="D=3"):
        ValidityScorer(engine.producer, Codebook.random(6, 3)).validity_score(
            torch.zeros(2, 3, 16, 16)
        )
    with pytest.raises(IncompatibleInputError, match="channel"):
        engine.validity_score(torch.zeros(2, 1, 16, 16))
    with pytest.raises(DatasetError, match="empty"):
        engine.image_distances(torch.zeros(0, 3, 16, 16))


def test_mahalanobis_and_knn_by_hand() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 3, generator=g, dtype=torch.float64) * torch.tensor([1.0, 2.0, 0.5])
    m = Mahalanobis.fit(x)
    q = torch.tensor([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0]], dtype=torch.float64)
    # shrunk covariance ≈ diag(1, 4, 0.25): distances ≈ 4 and 1
    assert m.score(q).tolist() == pytest.approx([4.0, 1.0], rel=0.25)
    classed = Mahalanobis.fit(
        torch.tensor([[0.0], [0.2], [10.0], [10.2]]), torch.tensor([0, 0, 1, 1])
    )
    assert classed.means.flatten().tolist() == pytest.approx([0.1, 10.1])
    knn = KNN.fit(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), k=1)
    assert knn.score(torch.tensor([[2.0, 0.0]])).item() == pytest.approx(0.0, abs=1e-9)
    assert knn.score(torch.tensor([[-1.0, 0.0]])).item() == pytest.approx(2**0.5)  # to (0, 1)
    assert knn.score(knn.bank, exclude_self=True).min() > 0
    ratio = MSERatio.fit(torch.tensor([1.0, 2.0, 3.0]))
    assert ratio.floor == 2.0 and ratio.score(torch.tensor([4.0])).item() == 2.0


@pytest.mark.slow
def test_fit_and_evaluate_every_method(engine, tmp_path) -> None:
    id_fit = noise_dataset("gaussian", 16, 32, seed=3)
    id_test = noise_dataset("gaussian", 16, 32, seed=4)
    far = noise_dataset("checkerboard", 16, 32, seed=4)
    detectors = fit_detectors(engine.producer, engine.reference, id_fit, cache_dir=tmp_path)
    mse = reconstruction_mse(engine.producer, id_fit)
    assert detectors.mse.floor == pytest.approx(float(mse.median()))
    report = evaluate_ood(detectors, id_test, {"checkerboard": far})
    assert set(report["checkerboard"]) == set(OOD_METHODS)
    assert report["checkerboard"]["validity"].auroc > 0.8  # measured 0.89; chance 0.5
    assert report["checkerboard"]["knn"].auroc > 0.9


@pytest.mark.slow
def test_in_distribution_batch_null_separates_id_from_ood(engine) -> None:
    calibrated = engine.calibrate_batches(noise_dataset("gaussian", 64, 16, seed=11), 8)
    assert calibrated.id_batch_distances.shape == (8,) and calibrated.id_batch_images == 8
    fresh = calibrated.validity_score(noise_dataset("gaussian", 8, 16, seed=12))
    far = calibrated.validity_score(noise_dataset("checkerboard", 8, 16, seed=12))
    # the random-codebook z cannot tell them apart in sign (both beat random codebooks) ...
    assert "random codebooks" in far.z_score_null
    # ... the ID-batch null can: the OOD batch lies beyond every ID batch, the ID one inside
    assert far.id_percentile == 100.0 and far.id_p_value == 1 / 9
    assert fresh.id_percentile < 100.0 and fresh.id_p_value > 1 / 9
    assert engine.validity_score(noise_dataset("gaussian", 8, 16, seed=12)).id_percentile is None
    with pytest.raises(ValueError, match="at least 16"):
        engine.calibrate_batches(noise_dataset("gaussian", 10, 16, seed=1), 8)


@pytest.mark.parametrize("k", [16, 100])
def test_knn_with_more_neighbours_than_fit_images_is_refused(engine, k: int) -> None:
    """Before, k was silently clamped to the fit size (every image a neighbour)."""
    id_fit = noise_dataset("gaussian", 16, 32, seed=3)
    with pytest.raises(IncompatibleInputError, match=rf"k={k} needs more than {k}.*has 16"):
        fit_detectors(engine.producer, engine.reference, id_fit, k=k)
