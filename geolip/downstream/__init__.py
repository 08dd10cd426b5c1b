"""Frozen-codebook pipelines: features, classification heads, OOD validity and baselines,
cross-modal alignment, the multi-expert soup, the image tokenizer, discrete diffusion over its
tokens and editing at any scale.

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
from geolip.downstream.diffusion import DiffusionModel, SamplingOptions
from geolip.downstream.diffusion_io import load_diffusion, save_diffusion
from geolip.downstream.diffusion_train import DiffusionTrainConfig, train_diffusion
from geolip.downstream.editing import (
    Inpaint,
    Interpolate,
    SubstituteAxes,
    ZeroAxes,
    process_at_scale,
)
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
    "DiffusionModel",
    "DiffusionTrainConfig",
    "FeatureHead",
    "Features",
    "FittedAlignment",
    "GeolipImageTokenizer",
    "HeadConfig",
    "Inpaint",
    "Interpolate",
    "OODMetrics",
    "SamplingOptions",
    "SoupFit",
    "SoupSettings",
    "SubstituteAxes",
    "TrainedHead",
    "Validity",
    "ValidityScorer",
    "ZeroAxes",
    "compute_features",
    "evaluate_ood",
    "evaluate_retrieval",
    "fit_alignment",
    "fit_detectors",
    "fit_soup",
    "load_diffusion",
    "load_head",
    "ood_metrics",
    "pool_activations",
    "process_at_scale",
    "run_align_study",
    "run_soup_study",
    "save_diffusion",
    "save_head",
    "soup_embeddings",
    "tokenize_dataset",
    "train_diffusion",
    "train_head",
]
