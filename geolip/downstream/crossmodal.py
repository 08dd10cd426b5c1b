"""Cross-modal alignment (OMEGA §8): two modalities' features → one shared space → retrieval.

Each modality is first reduced to ``dim`` principal components of its own training features
(centred; the bases are fitted per modality and need no pairs). A method then fixes how the
source (images) lands in the target's (text, the reference modality) space:

- ``codebook`` (no pairs): R from aligning the two modalities' codebooks, K axes of each
  cloud by projective k-means, with unknown matching and signs (``align_projective``); p ↦ R p.
- ``procrustes`` (pairs): R = orthogonal Procrustes between the unit rows of known pairs.
- ``whitened`` (pairs): whitened Procrustes (whiten, rotate, recolour).
- ``lstsq`` (pairs): ridge least-squares linear map W (λ = 1e-3 · mean eigenvalue).
- ``cca`` (pairs): scikit-learn CCA, both sides projected onto ``dim`` canonical pairs.
- ``random`` (no pairs): a Haar-random rotation, the null every method must beat.

Every fitted map is affine on each side, ``shared(x) = unit((x − mean) · P + offset)``, so a
:class:`FittedAlignment` is four small tensors per side and is saved as such. Retrieval then
ranks by cosine (nearest neighbour) or CSLS (:mod:`geolip.solvers.retrieval`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from geolip.errors import IncompatibleInputError
from geolip.solvers.alignment import align_projective
from geolip.solvers.procrustes import orthogonal_procrustes, whitened_procrustes
from geolip.solvers.projective_kmeans import projective_kmeans
from geolip.solvers.retrieval import (
    CSLS_K,
    RetrievalMetrics,
    cosine_scores,
    csls_scores,
    relevance,
    retrieval_metrics,
)

AlignMethod = Literal["codebook", "procrustes", "whitened", "lstsq", "cca", "random"]
ALIGN_METHODS: tuple[AlignMethod, ...] = (
    "codebook",
    "procrustes",
    "whitened",
    "lstsq",
    "cca",
    "random",
)
PAIRED_METHODS = frozenset({"procrustes", "whitened", "lstsq", "cca"})
RIDGE = 1e-3
DIRECTIONS = ("image→text", "text→image")
SCORINGS = ("nn", "csls")


@dataclass(frozen=True)
class SideMap:
    """One modality's map into the shared space: unit((x − mean) · projection + offset).

    Attributes:
        mean: (F,) float64, the training mean of the raw features.
        projection: (F, d) float64.
        offset: (d,) float64.
    """

    mean: torch.Tensor
    projection: torch.Tensor
    offset: torch.Tensor

    @property
    def in_dim(self) -> int:
        return int(self.projection.shape[0])

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """(N, F) raw features → (N, d) float64 unit rows of the shared space."""
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise IncompatibleInputError(
                f"features of shape {tuple(x.shape)} do not fit this map, which takes "
                f"(N, {self.in_dim}) features"
            )
        z = (x.to(torch.float64) - self.mean) @ self.projection + self.offset
        return z / z.norm(dim=1, keepdim=True).clamp(min=1e-300)

    def tensors(self, prefix: str) -> dict[str, torch.Tensor]:
        return {
            f"{prefix}.mean": self.mean,
            f"{prefix}.projection": self.projection,
            f"{prefix}.offset": self.offset,
        }

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], prefix: str) -> SideMap:
        return cls(*(tensors[f"{prefix}.{k}"] for k in ("mean", "projection", "offset")))


@dataclass(frozen=True)
class FittedAlignment:
    """Both modalities' maps into the shared space, and what the fit reported.

    Attributes:
        method: one of :data:`ALIGN_METHODS`.
        source, target: the two :class:`SideMap`.
        rotation: (d, d) float64 R between the PCA spaces for rotation methods, else ``None``.
        diagnostics: method-specific numbers (the codebook alignment's z-score and verdict, ...).
    """

    method: str
    source: SideMap
    target: SideMap
    rotation: torch.Tensor | None = None
    diagnostics: dict[str, Any] = field(default_factory=dict)


def pca_basis(x: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean (F,), basis (F, dim)) of the top ``dim`` principal directions of (N, F) rows,
    float64, signs fixed so each direction's largest-magnitude loading is positive."""
    if not 1 <= dim <= min(x.shape[0] - 1, x.shape[1]):
        raise IncompatibleInputError(
            f"dim {dim} needs 1 <= dim <= min(N - 1, F) = {min(x.shape[0] - 1, x.shape[1])} "
            f"for features of shape {tuple(x.shape)}"
        )
    x = x.to(torch.float64)
    mean = x.mean(dim=0)
    _, _, vh = torch.linalg.svd(x - mean, full_matrices=False)
    basis = vh[:dim].T
    lead = basis.gather(0, basis.abs().argmax(dim=0, keepdim=True))
    return mean, basis * torch.sign(lead)


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=1, keepdim=True).clamp(min=1e-300)


def check_pairs(source: torch.Tensor, target: torch.Tensor, method: str, dim: int) -> None:
    """Refuse, before any work, inputs no method can fit (clear IncompatibleInputError)."""
    for name, x in (("source", source), ("target", target)):
        if not isinstance(x, torch.Tensor) or x.ndim != 2:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise IncompatibleInputError(f"{name} features must be (N, F), got {shape}")
        if not torch.isfinite(x).all():
            raise IncompatibleInputError(f"{name} features contain NaN or Inf")
    if method not in ALIGN_METHODS:
        raise IncompatibleInputError(f"unknown method {method!r}; expected one of {ALIGN_METHODS}")
    if method in PAIRED_METHODS and source.shape[0] != target.shape[0]:
        raise IncompatibleInputError(
            f"{method} fits on known pairs, but got {source.shape[0]} source rows and "
            f"{target.shape[0]} target rows (mismatched pair counts)"
        )
    for name, x in (("source", source), ("target", target)):
        if not 1 <= dim <= min(x.shape[0] - 1, x.shape[1]):
            raise IncompatibleInputError(
                f"dim {dim} does not fit the {name} features {tuple(x.shape)}: it needs "
                f"1 <= dim <= min(N - 1, F) = {min(x.shape[0] - 1, x.shape[1])} "
                "(dimension mismatch)"
            )


def fit_alignment(
    method: AlignMethod,
    source: torch.Tensor,
    target: torch.Tensor,
    *,
    dim: int = 32,
    seed: int = 0,
    codebook_size: int = 32,
    null_trials: int = 16,
) -> FittedAlignment:
    """Fit ``method`` (module table) on training features (N, F_s) and (N, F_t).

    Rows of ``source`` and ``target`` are pairs for the paired methods; ``codebook`` and
    ``random`` never read the pairing (``codebook`` accepts different N). ``seed`` drives the
    random rotation and the codebooks' k-means seeding; ``null_trials`` the codebook
    alignment's i.i.d. null.
    """
    check_pairs(source, target, method, dim)
    mean_s, basis_s = pca_basis(source, dim)
    mean_t, basis_t = pca_basis(target, dim)
    p_s = (source.to(torch.float64) - mean_s) @ basis_s
    p_t = (target.to(torch.float64) - mean_t) @ basis_t
    zero = torch.zeros(dim, dtype=torch.float64)
    target_map = SideMap(mean_t, basis_t, zero)
    diagnostics: dict[str, Any] = {}
    rotation = None
    if method in ("procrustes", "codebook", "random"):
        if method == "procrustes":
            rotation = orthogonal_procrustes(_unit(p_s), _unit(p_t))
        elif method == "random":
            rotation = random_rotation(dim, seed)
        else:
            rotation, diagnostics = _codebook_rotation(p_s, p_t, codebook_size, seed, null_trials)
        return FittedAlignment(
            method, SideMap(mean_s, basis_s @ rotation.T, zero), target_map, rotation, diagnostics
        )
    if method == "whitened":
        w = whitened_procrustes(p_s, p_t)
        m = w.source_whitener @ w.rotation.T @ w.target_colorer
        offset = w.target_mean - w.source_mean @ m
        return FittedAlignment(method, SideMap(mean_s, basis_s @ m, offset), target_map, w.rotation)
    if method == "lstsq":
        gram = p_s.T @ p_s
        lam = RIDGE * torch.diagonal(gram).mean()
        w = torch.linalg.solve(gram + lam * torch.eye(dim, dtype=torch.float64), p_s.T @ p_t)
        return FittedAlignment(method, SideMap(mean_s, basis_s @ w, zero), target_map)
    return _cca(p_s, p_t, mean_s, basis_s, mean_t, basis_t, dim)


def _codebook_rotation(
    p_s: torch.Tensor, p_t: torch.Tensor, k: int, seed: int, null_trials: int
) -> tuple[torch.Tensor, dict[str, Any]]:
    """R between the two clouds' projective k-means codebooks, found without any pairs."""
    k = min(k, p_s.shape[0], p_t.shape[0])
    cb_s = projective_kmeans(p_s, k, seed=seed).centroids
    cb_t = projective_kmeans(p_t, k, seed=seed).centroids
    res = align_projective(cb_s, cb_t, null_trials=null_trials, seed=seed)
    # Axes have no sign, so R and −R align the codebooks equally well, but −R sends the
    # cloud to its mirror image. Odd moments tell them apart without pairs: choose the sign
    # under which the third moments of the mapped source agree with the target's.
    mapped, t = _unit(p_s) @ res.rotation.T, _unit(p_t)
    vote = (mapped.pow(3).mean(dim=0) * t.pow(3).mean(dim=0)).sum().item()
    sign = 1.0 if vote >= 0 else -1.0
    return sign * res.rotation, {
        "codebook_size": k,
        "global_sign": sign,
        "third_moment_vote": vote,
        "mean_residual_deg": res.mean_residual_deg,
        "inlier_fraction": res.inliers.double().mean().item(),
        "z_score": res.z_score,
        "verdict": res.verdict,
        "null_mean_deg": res.null_mean_deg,
    }


def _cca(
    p_s: torch.Tensor,
    p_t: torch.Tensor,
    mean_s: torch.Tensor,
    basis_s: torch.Tensor,
    mean_t: torch.Tensor,
    basis_t: torch.Tensor,
    dim: int,
) -> FittedAlignment:
    """CCA on the PCA rows; its transform is affine, read off at 0 and the unit vectors."""
    from sklearn.cross_decomposition import CCA

    cca = CCA(n_components=dim, max_iter=2000).fit(p_s.numpy(), p_t.numpy())
    probe = torch.cat([torch.zeros(1, dim), torch.eye(dim)]).numpy()
    xs, ys = cca.transform(probe, probe)
    xs, ys = torch.from_numpy(xs).double(), torch.from_numpy(ys).double()
    src = SideMap(mean_s, basis_s @ (xs[1:] - xs[0]), xs[0])
    tgt = SideMap(mean_t, basis_t @ (ys[1:] - ys[0]), ys[0])
    return FittedAlignment("cca", src, tgt)


def evaluate_retrieval(
    fitted: FittedAlignment,
    source: torch.Tensor,
    target: torch.Tensor,
    groups: torch.Tensor,
    *,
    csls_k: int = CSLS_K,
    ks: tuple[int, ...] = (1, 5),
) -> dict[str, dict[str, RetrievalMetrics]]:
    """Retrieval on held-out pairs: direction (``image→text``, ``text→image``) → scoring
    (``nn``, ``csls``) → :class:`RetrievalMetrics`. ``groups`` (N,) says which items answer
    each other (:func:`geolip.data.captions.relevance_groups`)."""
    if not source.shape[0] == target.shape[0] == groups.shape[0]:
        raise IncompatibleInputError(
            f"held-out pairs disagree in count: {source.shape[0]} source rows, "
            f"{target.shape[0]} target rows, {groups.shape[0]} groups"
        )
    zs, zt = fitted.source.apply(source), fitted.target.apply(target)
    rel = relevance(groups, groups)
    out: dict[str, dict[str, RetrievalMetrics]] = {}
    for direction, (q, g) in zip(DIRECTIONS, ((zs, zt), (zt, zs)), strict=True):
        out[direction] = {
            "nn": retrieval_metrics(cosine_scores(q, g), rel, ks),
            "csls": retrieval_metrics(csls_scores(q, g, csls_k), rel, ks),
        }
    return out


def random_rotation(dim: int, seed: int) -> torch.Tensor:
    """A (dim, dim) Haar-random orthogonal matrix, float64 (QR with the sign fix)."""
    gen = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(dim, dim, generator=gen, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))


def mean_cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean row cosine of two (N, d) matrices (NaN for N = 0)."""
    if a.shape[0] == 0:
        return math.nan
    return (_unit(a.double()) * _unit(b.double())).sum(dim=1).mean().item()
