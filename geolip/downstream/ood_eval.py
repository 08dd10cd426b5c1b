"""Fit every OOD detector on in-distribution images and score datasets with all of them.

Detectors: ``validity`` (per-image codebook distance, :mod:`geolip.downstream.ood`),
``mse_ratio`` (reconstruction MSE over the native floor), ``mahalanobis`` and ``knn`` (on the
pooled frozen features of :mod:`geolip.downstream.features`). Scores: higher = more OOD.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from geolip.codebook import Codebook
from geolip.data.dataset import ImageDataset
from geolip.downstream.features import FeatureKind, compute_features
from geolip.downstream.ood import ValidityScorer
from geolip.downstream.ood_baselines import KNN, Mahalanobis, MSERatio, reconstruction_mse
from geolip.downstream.ood_metrics import OODMetrics, ood_metrics
from geolip.errors import IncompatibleInputError

OOD_METHODS: tuple[str, ...] = ("validity", "mse_ratio", "mahalanobis", "knn")


@dataclass(frozen=True)
class OODDetectors:
    """Every detector, fitted on the same in-distribution images."""

    engine: ValidityScorer
    mse: MSERatio
    mahalanobis: Mahalanobis
    knn: KNN
    feature: FeatureKind
    cache_dir: Path | None
    batch_size: int

    def scores(self, dataset: ImageDataset, progress: bool = False) -> dict[str, torch.Tensor]:
        """Method → (N,) float64 OOD scores of every image of ``dataset``."""
        feats = compute_features(
            self.engine.producer,
            self.engine.reference,
            dataset,
            (self.feature,),
            batch_size=self.batch_size,
            cache_dir=self.cache_dir,
            progress=progress,
        )[self.feature]
        mse = reconstruction_mse(self.engine.producer, dataset, self.batch_size)
        return {
            "validity": self.engine.image_distances(dataset),
            "mse_ratio": self.mse.score(mse),
            "mahalanobis": self.mahalanobis.score(feats),
            "knn": self.knn.score(feats),
        }


def fit_detectors(
    producer: torch.nn.Module,
    reference: Codebook,
    id_fit: ImageDataset,
    *,
    feature: FeatureKind = "mean",
    k: int = 5,
    batch_size: int = 32,
    cache_dir: str | Path | None = None,
    class_conditional: bool = False,
    progress: bool = False,
) -> OODDetectors:
    """Fit all detectors on ``id_fit`` (in-distribution; its labels are used by Mahalanobis
    only with ``class_conditional``).

    Raises:
        IncompatibleInputError: ``k`` is not below the number of fit images (kNN would read
            every image, or more than there are), before any work.
    """
    if not 1 <= k < len(id_fit):
        raise IncompatibleInputError(
            f"kNN with k={k} needs more than {k} in-distribution fit images; "
            f"the fit split has {len(id_fit)} (take a smaller k or more images)"
        )
    cache = None if cache_dir is None else Path(cache_dir)
    engine = ValidityScorer(producer, reference, batch_size=batch_size).calibrate(id_fit)
    feats = compute_features(
        producer,
        reference,
        id_fit,
        (feature,),
        batch_size=batch_size,
        cache_dir=cache,
        progress=progress,
    )[feature]
    assert engine.native_mse is not None  # calibrate sets it
    return OODDetectors(
        engine=engine,
        mse=MSERatio(floor=engine.native_mse),
        mahalanobis=Mahalanobis.fit(feats, id_fit.labels if class_conditional else None),
        knn=KNN.fit(feats, k=k),
        feature=feature,
        cache_dir=cache,
        batch_size=batch_size,
    )


def evaluate_ood(
    detectors: OODDetectors,
    id_test: ImageDataset,
    ood_sets: Mapping[str, ImageDataset],
    progress: bool = False,
) -> dict[str, dict[str, OODMetrics]]:
    """OOD set name → method → metrics of held-out in-distribution ``id_test`` against it."""
    id_scores = detectors.scores(id_test, progress)
    report: dict[str, dict[str, OODMetrics]] = {}
    for name, dataset in ood_sets.items():
        scores = detectors.scores(dataset, progress)
        report[name] = {m: ood_metrics(id_scores[m], scores[m]) for m in OOD_METHODS}
    return report
