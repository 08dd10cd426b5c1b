"""Frozen-codebook pipelines: features, classification heads, OOD validity and baselines,
cross-modal alignment and the multi-expert soup.

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
from geolip.downstream.crossmodal import FittedAlignment, evaluate_retrieval, fit_alignment
from geolip.downstream.crossmodal_study import AlignSettings, run_align_study
from geolip.downstream.features import Features, compute_features, pool_activations
from geolip.downstream.ood import Validity, ValidityScorer
from geolip.downstream.ood_eval import evaluate_ood, fit_detectors
from geolip.downstream.ood_metrics import OODMetrics, ood_metrics
from geolip.downstream.soup import SoupFit, fit_soup, soup_embeddings
from geolip.downstream.soup_study import SoupSettings, run_soup_study
from geolip.downstream.token_files import tokenize_dataset
from geolip.downstream.tokenizer import GeolipImageTokenizer

__all__ = [
    "AlignSettings",
    "FeatureHead",
    "Features",
    "FittedAlignment",
    "GeolipImageTokenizer",
    "HeadConfig",
    "OODMetrics",
    "SoupFit",
    "SoupSettings",
    "TrainedHead",
    "Validity",
    "ValidityScorer",
    "compute_features",
    "evaluate_ood",
    "evaluate_retrieval",
    "fit_alignment",
    "fit_detectors",
    "fit_soup",
    "load_head",
    "ood_metrics",
    "pool_activations",
    "run_align_study",
    "run_soup_study",
    "save_head",
    "soup_embeddings",
    "tokenize_dataset",
    "train_head",
]
