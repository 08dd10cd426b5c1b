"""Producers: models that emit codebook rows, behind one contract.

``contract`` (the :class:`Producer` protocol, ``frozen()``), ``presets`` (one table: name →
model + recipe; :func:`build`, :func:`train_preset`), ``loading`` (the one
:func:`load_producer`), one module per model family, ``train`` (one trainer), ``checkpoint``,
``extract`` (rows → codebook beside its null) and ``controls``.
"""

from geolip.producers.anchor_codebook import anchor_codebook
from geolip.producers.battery_array import BatteryArray, BatteryArrayConfig
from geolip.producers.checkpoint import TrainingState, load_checkpoint, save_checkpoint
from geolip.producers.contract import (
    Geometry,
    Producer,
    ProducerModule,
    Reconstructor,
    TargetRegressor,
    Trainable,
)
from geolip.producers.controls import extraction_controls
from geolip.producers.cv_battery import CVBattery, CVBatteryConfig
from geolip.producers.extract import extract_codebook
from geolip.producers.extract_kmeans import extract_kmeans_codebook
from geolip.producers.glfm import GLFM, GLFMConfig
from geolip.producers.loading import load_producer, register_model_class, require_producer
from geolip.producers.presets import (
    PRESETS,
    Preset,
    build,
    get_preset,
    register_preset,
    train_config,
    train_preset,
)
from geolip.producers.quickstart import QuickstartResult, run_quickstart
from geolip.producers.sphere_solver import SphereSolver, SphereSolverConfig
from geolip.producers.svae_transformer import SVAETransformer, SVAETransformerConfig
from geolip.producers.train import TrainConfig, Trainer
from geolip.producers.upstream import load_upstream

__all__ = [
    "GLFM",
    "PRESETS",
    "BatteryArray",
    "BatteryArrayConfig",
    "CVBattery",
    "CVBatteryConfig",
    "GLFMConfig",
    "Geometry",
    "Preset",
    "Producer",
    "ProducerModule",
    "QuickstartResult",
    "Reconstructor",
    "SVAETransformer",
    "SVAETransformerConfig",
    "SphereSolver",
    "SphereSolverConfig",
    "TargetRegressor",
    "TrainConfig",
    "Trainable",
    "Trainer",
    "TrainingState",
    "anchor_codebook",
    "build",
    "extract_codebook",
    "extract_kmeans_codebook",
    "extraction_controls",
    "get_preset",
    "load_checkpoint",
    "load_producer",
    "load_upstream",
    "register_model_class",
    "register_preset",
    "require_producer",
    "run_quickstart",
    "save_checkpoint",
    "train_config",
    "train_preset",
]
