"""Frozen-codebook pipelines: features, classification heads, OOD validity and baselines.

Every pipeline reads its producer only through :class:`geolip.producers.contract.Producer`.
"""

from geolip.downstream.classify import (
    FeatureHead,
    HeadConfig,
    TrainedHead,
    load_head,
    save_head,
    train_head,
)
from geolip.downstream.features import Features, compute_features, pool_activations
from geolip.downstream.ood import Validity, ValidityScorer
from geolip.downstream.ood_eval import evaluate_ood, fit_detectors
from geolip.downstream.ood_metrics import OODMetrics, ood_metrics

__all__ = [
    "FeatureHead",
    "Features",
    "HeadConfig",
    "OODMetrics",
    "TrainedHead",
    "Validity",
    "ValidityScorer",
    "compute_features",
    "evaluate_ood",
    "fit_detectors",
    "load_head",
    "ood_metrics",
    "pool_activations",
    "save_head",
    "train_head",
]
