"""geolip: portable projective codebooks.

``import geolip`` is cheap: torch loads on first use of a name that needs it, so the
``geolip`` command answers ``--help`` without importing it.
"""

from __future__ import annotations

import importlib
from typing import Any

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
    "extract_codebook": "geolip.producers.extract",
    "compute_features": "geolip.downstream.features",
    "ValidityEngine": "geolip.downstream.ood",
}

__all__ = [
    "CodebookError",
    "CodebookFormatError",
    "CodebookIntegrityError",
    "CodebookNotFoundError",
    "CodebookValidationError",
    "CodebookVersionError",
    "GeolipError",
    "IncompatibleCodebooksError",
    "__version__",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'geolip' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
