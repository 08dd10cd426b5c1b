"""Extraction from the user's data: any dataset spec as calibration, and the k-means method
with usage counts and its i.i.d. null."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny_producer import tiny_producer

from geolip import Codebook
from geolip.errors import DatasetError, IncompatibleInputError
from geolip.producers.calibration import calibration_images, resolve_calibration
from geolip.producers.extract import extract_codebook
from geolip.producers.extract_kmeans import extract_kmeans_codebook

SHAPES = "shapes:n=6,size=16"


def test_calibration_is_a_noise_name_or_any_dataset_spec() -> None:
    noise, label = calibration_images("gaussian", 3, n=5, size=8, seed=1)
    assert noise.shape == (5, 3, 8, 8) and label == "gaussian"
    assert calibration_images("gaussian", 3)[0].shape == (64, 3, 64, 64)
    shapes, label = calibration_images("shapes:size=16,n=6", 3)
    assert shapes.shape == (6, 3, 16, 16) and label == SHAPES  # canonical spec text
    assert resolve_calibration(SHAPES).spec is not None
    assert resolve_calibration("sixteen_noise").spec is None


def test_calibration_refusals_name_the_problem() -> None:
    with pytest.raises(DatasetError, match="or a noise calibration: gaussian"):
        resolve_calibration("bogus")
    with pytest.raises(ValueError, match="set n inside it"):
        calibration_images(SHAPES, 3, n=4)
    with pytest.raises(IncompatibleInputError, match="add channels=3 to the spec"):
        calibration_images("digits:n=4", 3)


def test_mean_extraction_reads_a_dataset_spec() -> None:
    cb = extract_codebook(tiny_producer(0), SHAPES, null_trials=20, controls=False)
    ext = cb.meta.extraction
    assert ext is not None and ext.calibration == SHAPES and ext.n == 6
    assert ext.aggregation == "mean" and ext.pair_threshold == -0.9
    assert cb.meta.lineage.parameters == {"size": 16} and cb.name == f"{SHAPES}-n6"
    assert cb.meta.quality is not None and cb.meta.quality.null.kind == "rows"


def test_kmeans_extraction_counts_every_row_and_stands_beside_its_null(tmp_path: Path) -> None:
    model = tiny_producer(0)
    kwargs = {"k": 12, "restarts": 2, "null_trials": 3, "quality_null_trials": 20}
    cb = extract_kmeans_codebook(model, SHAPES, **kwargs)
    assert cb.size == 12 and cb.dim == 4
    usage = cb.stats["usage"]
    assert float(usage.sum()) == 6 * 16 * 8  # images · patches · rows per patch
    assert bool((usage[:-1] >= usage[1:]).all())  # most used first
    assert bool((cb.stats["mean_abs_cos"] <= 1.0).all())
    ext = cb.meta.extraction
    assert ext is not None and ext.aggregation == "kmeans" and ext.pair_threshold is None
    assert ext.n_rows == 8 and ext.calibration == SHAPES
    assert cb.meta.quality is not None and cb.meta.quality.null.kind == "axes"
    report = cb.meta.extra["kmeans"]
    assert report["rows"] == 768 and report["fitted_rows"] == 768
    for statistic in ("objective", "perplexity"):
        placed = report[statistic]
        assert placed["trials"] == 3 and 0 <= placed["percentile"] <= 100
    assert 1 <= report["perplexity"]["observed"] <= 12
    again = extract_kmeans_codebook(model, SHAPES, **kwargs)
    assert again.id == cb.id  # deterministic under the seed
    loaded = Codebook.load(cb.save(tmp_path / "km"))
    assert loaded.id == cb.id and loaded.meta.extra == cb.meta.extra
    reassessed = loaded.assess(null_trials=20)
    assert reassessed.null.kind == "axes"


def test_kmeans_extraction_fits_on_a_sample_from_noise() -> None:
    cb = extract_kmeans_codebook(
        tiny_producer(1),
        "gaussian",
        k=5,
        n=4,
        size=8,
        max_rows=50,
        restarts=1,
        null_trials=2,
        quality_null_trials=20,
    )
    report = cb.meta.extra["kmeans"]
    assert report["rows"] == 4 * 4 * 8 and report["fitted_rows"] == 50
    assert cb.meta.lineage.parameters["max_rows"] == 50
    assert torch.isclose(cb.stats["usage"].sum(), torch.tensor(128.0))
