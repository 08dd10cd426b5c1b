"""Pure tensor math: projective geometry, Procrustes and alignment, metrics, null models.

Nothing here reads files or knows about models; inputs and outputs are tensors. The fused
Triton kernels behind :func:`gram_svd` are private (``_svd_triton``).
"""

from geolip.solvers.alignment import ProjectiveAlignment, align_projective
from geolip.solvers.linalg import gram_svd, sphere_normalize
from geolip.solvers.metrics import cv_uniform, effective_rank, pentachoron_cv
from geolip.solvers.null import NullDistribution, null_codebook_stats, null_percentile
from geolip.solvers.primitives import BasisSolution, project, solve_basis
from geolip.solvers.procrustes import (
    GPAResult,
    WhitenedProcrustes,
    generalized_procrustes,
    orthogonal_procrustes,
    whitened_procrustes,
)
from geolip.solvers.projective import (
    Collapse,
    StatuteReport,
    antipodal_collapse,
    canonical_sign,
    deviation,
    mean_projective_angle,
    projective_angle,
    projective_cos,
    statute,
    uniform_rp_baseline,
)
from geolip.solvers.projective_kmeans import (
    KMeansNull,
    ProjectiveKMeans,
    kmeans_null,
    projective_kmeans,
)

__all__ = [
    "BasisSolution",
    "Collapse",
    "GPAResult",
    "KMeansNull",
    "NullDistribution",
    "ProjectiveAlignment",
    "ProjectiveKMeans",
    "StatuteReport",
    "WhitenedProcrustes",
    "align_projective",
    "antipodal_collapse",
    "canonical_sign",
    "cv_uniform",
    "deviation",
    "effective_rank",
    "generalized_procrustes",
    "gram_svd",
    "kmeans_null",
    "mean_projective_angle",
    "null_codebook_stats",
    "null_percentile",
    "orthogonal_procrustes",
    "pentachoron_cv",
    "project",
    "projective_angle",
    "projective_cos",
    "projective_kmeans",
    "solve_basis",
    "sphere_normalize",
    "statute",
    "uniform_rp_baseline",
    "whitened_procrustes",
]
