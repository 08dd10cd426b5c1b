"""geolip: portable projective codebooks.

``import geolip`` is cheap: torch loads on first use of a name that needs it, so the
``geolip`` command answers ``--help`` without importing it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from geolip._version import __version__
from geolip.errors import (
    CodebookError,
    CodebookFormatError,
    CodebookIntegrityError,
    CodebookNotFoundError,
    CodebookValidationError,
    CodebookVersionError,
    GeolipError,
    IncompatibleCodebooksError,
)

if TYPE_CHECKING:  # what the lazy names below resolve to, for type checkers and IDEs
    from geolip.codebook import Codebook, CodebookDiff, CodebookMeta, QualityReport
    from geolip.downstream.features import compute_features
    from geolip.downstream.ood import ValidityScorer
    from geolip.producers.contract import Producer
    from geolip.producers.extract import extract_codebook
    from geolip.producers.loading import load_producer
    from geolip.producers.presets import build, train_preset
    from geolip.producers.sphere_solver import SphereSolver
    from geolip.solvers.alignment import ProjectiveAlignment, align_projective
    from geolip.solvers.linalg import gram_svd
    from geolip.solvers.null import null_codebook_stats
    from geolip.solvers.projective import antipodal_collapse, uniform_rp_baseline

_LAZY = {
    "Codebook": "geolip.codebook",
    "CodebookMeta": "geolip.codebook",
    "CodebookDiff": "geolip.codebook",
    "QualityReport": "geolip.codebook",
    "ProjectiveAlignment": "geolip.solvers.alignment",
    "align_projective": "geolip.solvers.alignment",
    "antipodal_collapse": "geolip.solvers.projective",
    "uniform_rp_baseline": "geolip.solvers.projective",
    "null_codebook_stats": "geolip.solvers.null",
    "gram_svd": "geolip.solvers.linalg",
    "SphereSolver": "geolip.producers.sphere_solver",
    "load_producer": "geolip.producers.loading",
    "Producer": "geolip.producers.contract",
    "build": "geolip.producers.presets",
    "train_preset": "geolip.producers.presets",
    "extract_codebook": "geolip.producers.extract",
    "compute_features": "geolip.downstream.features",
    "ValidityScorer": "geolip.downstream.ood",
}

__all__ = [
    "Codebook",
    "CodebookDiff",
    "CodebookError",
    "CodebookFormatError",
    "CodebookIntegrityError",
    "CodebookMeta",
    "CodebookNotFoundError",
    "CodebookValidationError",
    "CodebookVersionError",
    "GeolipError",
    "IncompatibleCodebooksError",
    "Producer",
    "ProjectiveAlignment",
    "QualityReport",
    "SphereSolver",
    "ValidityScorer",
    "__version__",
    "align_projective",
    "antipodal_collapse",
    "build",
    "compute_features",
    "extract_codebook",
    "gram_svd",
    "load_producer",
    "null_codebook_stats",
    "train_preset",
    "uniform_rp_baseline",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'geolip' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
