"""The :class:`Codebook`: K unit axes in R^D read as points of RP^(D-1), immutable and hashed."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import torch

from geolip._version import __version__
from geolip.codebook import algebra, io
from geolip.codebook.algebra import CodebookDiff
from geolip.codebook.quality import assess_quality
from geolip.codebook.schema import FORMAT_VERSION, CodebookMeta, Lineage, QualityReport
from geolip.errors import CodebookValidationError
from geolip.solvers.alignment import ProjectiveAlignment, align_projective
from geolip.solvers.projective import canonical_sign

if TYPE_CHECKING:
    from geolip.hub import PublishedCommit

_KEEP_NORM_TOLERANCE = 1e-6
_STAT_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_")


class Quantized(NamedTuple):
    """Top-k axes per row: ``indices`` (..., k) int64 and ``confidence`` (..., k) = |cos|."""

    indices: torch.Tensor
    confidence: torch.Tensor


def canonicalize_axes(axes: Any) -> torch.Tensor:
    """Any (K, D) array of non-zero rows → float32 unit rows with canonical sign.

    Rows are normalised in float64 and rounded once to float32; a row whose float32 norm is
    already within 1e-6 of 1 is kept bit for bit, which makes the map idempotent. Flipping the
    sign of any input row gives the same output bytes.
    """
    x = torch.as_tensor(axes).detach().cpu()
    if not x.is_floating_point():
        x = x.double()
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 2:
        raise CodebookValidationError(f"axes must be (K>=1, D>=2), got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        bad = (~torch.isfinite(x)).any(dim=1).nonzero().flatten()[:8].tolist()
        raise CodebookValidationError(f"axes {bad} contain NaN or Inf")
    x64 = x.double()
    norms = x64.norm(dim=1, keepdim=True)
    if (norms == 0).any():
        zero = (norms.flatten() == 0).nonzero().flatten()[:8].tolist()
        raise CodebookValidationError(f"axes {zero} are zero vectors, which have no direction")
    x32 = x.float()
    keep = (x32.double().norm(dim=1, keepdim=True) - 1).abs() <= _KEEP_NORM_TOLERANCE
    unit = torch.where(keep, x32, (x64 / norms).float())
    return canonical_sign(unit)


def _canonical_stats(stats: Mapping[str, Any] | None, k: int) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for name, value in (stats or {}).items():
        if name == "axes" or not name or not set(name) <= _STAT_NAME_CHARS or name[0].isdigit():
            raise CodebookValidationError(
                f"stat name {name!r} must be [a-z_][a-z0-9_]* and not 'axes'"
            )
        t = torch.as_tensor(value).detach().cpu().float().flatten() + 0.0
        if t.shape != (k,):
            raise CodebookValidationError(f"stat {name!r} has {t.numel()} values, expected K={k}")
        if not torch.isfinite(t).all():
            raise CodebookValidationError(f"stat {name!r} contains NaN or Inf")
        out[name] = t
    return out


class Codebook:
    """K unit axes in R^D, read as points of real projective space RP^(D-1).

    Immutable and content-addressed: :attr:`id` is the sha256 of the format version, D, K and the
    canonical float32 bytes of the axes and per-axis stats, so equal axes (up to sign) give equal
    ids on any machine. Index order is identity: axis i is token i, and every operation that
    adds axes appends without renumbering. Build with :meth:`from_axes` or :meth:`load`.
    """

    __slots__ = ("_axes", "_id", "_meta", "_stats")

    def __init__(
        self, axes: torch.Tensor, stats: dict[str, torch.Tensor], meta: CodebookMeta, cid: str
    ) -> None:
        self._axes = axes
        self._stats = stats
        self._meta = meta
        self._id = cid

    # construction -------------------------------------------------------------------------
    @classmethod
    def from_axes(
        cls,
        axes: Any,
        name: str = "codebook",
        *,
        stats: Mapping[str, Any] | None = None,
        **meta: Any,
    ) -> Codebook:
        """Build a codebook from (K, D) rows (any norm, any sign, any float dtype).

        Args:
            axes: (K, D) array-like of non-zero, finite rows.
            name: human name, stored in the meta (not part of the id).
            stats: optional per-axis statistics, name → (K,) values (part of the id).
            **meta: further :class:`CodebookMeta` fields: ``producer``, ``extraction``,
                ``quality``, ``lineage``, ``created_at``, ``extra``.
        """
        a = canonicalize_axes(axes)
        s = _canonical_stats(stats, a.shape[0])
        m = CodebookMeta(
            name=name,
            dim=a.shape[1],
            size=a.shape[0],
            geolip_version=meta.pop("geolip_version", __version__),
            **meta,
        )
        return cls(a, s, m, io.codebook_id(a, s))

    @classmethod
    def random(cls, size: int, dim: int, seed: int = 0, name: str | None = None) -> Codebook:
        """An i.i.d. null codebook: ``size`` uniform random axes of R^``dim`` (Gaussian rows,
        float64, from ``torch.Generator().manual_seed(seed)``); lineage ``random``."""
        gen = torch.Generator().manual_seed(seed)
        rows = torch.randn(size, dim, generator=gen, dtype=torch.float64)
        lineage = Lineage(operation="random", parameters={"k": size, "d": dim, "seed": seed})
        return cls.from_axes(rows, name=name or f"random-K{size}-D{dim}-s{seed}", lineage=lineage)

    @classmethod
    def load(cls, path: str | Path) -> Codebook:
        """Load and verify an artifact folder or its ``.safetensors`` file.

        Raises:
            CodebookNotFoundError, CodebookFormatError, CodebookVersionError,
            CodebookIntegrityError, CodebookValidationError: each naming the file and problem.
        """
        content = io.read_artifact(path)
        return cls(content.axes, content.stats, content.meta, content.codebook_id)

    def save(self, path: str | Path) -> Path:
        """Write the artifact atomically: a folder (``codebook.safetensors`` + ``codebook.json``)
        or, for a ``*.safetensors`` path, that file and a ``.json`` beside it. Saving the same
        codebook twice gives identical bytes. Returns the ``.safetensors`` path."""
        payload = io.serialize(self._axes, self._stats, self._meta, self._id)
        return io.write_artifact(path, payload, io.sidecar_json(self._meta, self._id), self._id)

    def push_to_hub(
        self,
        repo_id: str,
        revision: str | None = None,
        private: bool = False,
        token: str | None = None,
        endpoint: str | None = None,
        *,
        timeout: float | None = None,
        **options: Any,
    ) -> PublishedCommit:
        """Publish as a Hub model repo in one commit on branch ``revision`` (default main):
        ``codebook.safetensors``, ``codebook.json`` and a generated ``README.md`` card. Returns
        the commit, whose sha pins it. ``timeout``: seconds per request (default 10). Options
        (``base_model``, ``license``, ...): see :func:`geolip.hub.push_codebook`."""
        from geolip.hub import DEFAULT_TIMEOUT, HubTarget, push_codebook

        seconds = DEFAULT_TIMEOUT if timeout is None else timeout
        target = HubTarget(repo_id, revision, endpoint, token, seconds)
        return push_codebook(self, target, private=private, **options)

    @classmethod
    def from_hub(
        cls,
        repo_id: str,
        revision: str | None = None,
        endpoint: str | None = None,
        *,
        token: str | None = None,
        timeout: float | None = None,
        **options: Any,
    ) -> Codebook:
        """Fetch a codebook from a Hub repo at ``revision`` (branch, tag or commit sha): file
        hashes checked, then the full verified load, before anything is cached; works from the
        cache under HF_HUB_OFFLINE=1. ``timeout``: seconds per request (default 10). Options
        (``cache_dir``, ``expected_id``, ...): see :func:`geolip.hub.fetch_codebook`."""
        from geolip.hub import DEFAULT_TIMEOUT, HubTarget, fetch_codebook

        seconds = DEFAULT_TIMEOUT if timeout is None else timeout
        target = HubTarget(repo_id, revision, endpoint, token, seconds)
        return fetch_codebook(target, **options).codebook

    def with_meta(self, **fields: Any) -> Codebook:
        """A copy with some meta fields replaced; the axes, stats and id are unchanged."""
        return Codebook(self._axes, self._stats, self._meta.model_copy(update=fields), self._id)

    # properties ---------------------------------------------------------------------------
    @property
    def id(self) -> str:
        """Hex sha256 content id (64 characters)."""
        return self._id

    @property
    def axes(self) -> torch.Tensor:
        """(K, D) float32, unit rows, canonical sign. Treat as read-only."""
        return self._axes

    @property
    def stats(self) -> dict[str, torch.Tensor]:
        """Per-axis statistics, name → (K,) float32 (a copy of the mapping)."""
        return dict(self._stats)

    @property
    def meta(self) -> CodebookMeta:
        return self._meta

    @property
    def name(self) -> str:
        return self._meta.name

    @property
    def dim(self) -> int:
        """D, the ambient dimension."""
        return int(self._axes.shape[1])

    @property
    def size(self) -> int:
        """K, the number of axes."""
        return int(self._axes.shape[0])

    @property
    def format_version(self) -> int:
        return FORMAT_VERSION

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:
        return f"Codebook(name={self.name!r}, K={self.size}, D={self.dim}, id={self._id[:12]})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Codebook) and other._id == self._id

    def __hash__(self) -> int:
        return hash(self._id)

    # geometry -----------------------------------------------------------------------------
    def activations(self, rows: torch.Tensor, signed: bool = False) -> torch.Tensor:
        """Cosines between rows and axes: (..., D) → (..., K).

        Rows are unit-normalised (zero rows give zeros). With ``signed=False`` (default) the
        result is |cos| ∈ [0, 1], invariant to the sign of rows and axes; ``signed=True`` gives
        cos ∈ [-1, 1] against the canonical axis signs. Computed in the dtype and on the device
        of ``rows`` (float32 at least). Equivariant: rotating rows and codebook by the same R
        leaves it unchanged.
        """
        if rows.shape[-1] != self.dim:
            raise ValueError(f"rows have D={rows.shape[-1]}, codebook has D={self.dim}")
        dtype = rows.dtype if rows.dtype in (torch.float32, torch.float64) else torch.float32
        unit = torch.nn.functional.normalize(rows.to(dtype), dim=-1)
        cos = unit @ self._axes.to(device=rows.device, dtype=dtype).T
        return cos if signed else cos.abs()

    def quantize(self, rows: torch.Tensor, k: int = 1) -> Quantized:
        """Top-k axes by |cos| for each row: (..., D) → indices and confidence, each (..., k)."""
        if not 1 <= k <= self.size:
            raise ValueError(f"k must be in [1, K={self.size}], got {k}")
        confidence, indices = self.activations(rows).topk(k, dim=-1)
        return Quantized(indices=indices, confidence=confidence)

    def rotate(self, rotation: torch.Tensor, name: str | None = None) -> Codebook:
        """Apply an orthogonal (D, D) matrix R to every axis (a ↦ R a); lineage ``rotate``."""
        r = torch.as_tensor(rotation, dtype=torch.float64).cpu()
        if r.shape != (self.dim, self.dim):
            raise ValueError(f"rotation must be ({self.dim}, {self.dim}), got {tuple(r.shape)}")
        err = (r.T @ r - torch.eye(self.dim, dtype=torch.float64)).abs().max().item()
        if err > 1e-5:
            raise ValueError(f"rotation is not orthogonal (max |RᵀR - I| = {err:.2e})")
        digest = hashlib.sha256(r.numpy().astype("<f8").tobytes()).hexdigest()
        return algebra.derive(
            self,
            self._axes.double() @ r.T,
            operation="rotate",
            parents=[self._id],
            name=name,
            rotation_sha256=digest,
            det=round(torch.linalg.det(r).item()),
        )

    def align(
        self,
        other: Codebook,
        *,
        proper: bool = False,
        null_trials: int = 16,
        seed: int = 0,
        **options: Any,
    ) -> ProjectiveAlignment:
        """Projective alignment with unknown correspondence: R with R·self[i] ≈ ±other[j].

        ``matching`` pairs (i in self, j in other), ``signs`` are the per-pair ±1,
        ``residual_deg`` the projective angles after rotation and ``z_score`` compares the mean
        residual with random codebooks of the same K, K' and D (negative = better than chance).
        Extra options go to :func:`geolip.solvers.procrustes.align_projective`.
        """
        algebra.require_compatible(self, other, "align")
        return align_projective(
            self._axes.double(),
            other._axes.double(),
            proper=proper,
            null_trials=null_trials,
            seed=seed,
            **options,
        )

    def distance(self, other: Codebook, *, proper: bool = False) -> float:
        """RMS chordal residual √mean(2 − 2|cos|) after projective alignment, in [0, √2]."""
        return self.align(other, proper=proper, null_trials=0).rms_chordal

    # algebra ------------------------------------------------------------------------------
    def aligned_to(self, reference: Codebook, **options: Any) -> Codebook:
        """This codebook rotated into ``reference``'s frame; lineage ``align``."""
        return algebra.aligned_to(self, reference, **options)

    def merge(
        self, other: Codebook, tol_deg: float = 5.0, *, align: bool = True, name: str | None = None
    ) -> Codebook:
        """Union: self's axes (indices kept), then other's axes farther than ``tol_deg`` from all
        of them, after aligning other into self's frame (``align=False`` skips alignment)."""
        return algebra.merge(self, other, tol_deg=tol_deg, align=align, name=name)

    def diff(self, other: Codebook, tol_deg: float = 5.0, *, align: bool = True) -> CodebookDiff:
        """Axes of self with no partner within ``tol_deg`` in other (after alignment)."""
        return algebra.diff(self, other, tol_deg=tol_deg, align=align)

    def extend(self, axes: Any, *, name: str | None = None) -> Codebook:
        """Append axes ((N, D) rows or a Codebook) after the existing ones; never renumbers."""
        return algebra.extend(self, axes, name=name)

    def assess(self, null_trials: int = 300, seed: int = 0) -> QualityReport:
        """Quality statistics beside the exact baseline and the i.i.d. null (spec §B.2-B.4)."""
        return assess_quality(self, null_trials=null_trials, seed=seed)
