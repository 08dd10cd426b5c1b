"""Projective alignment with unknown correspondence, signs and rotation (ICP + assignment).

Convention: a rotation ``R`` (D, D) float64 acts on rows as ``x @ R.T``; "align A to B" means
R a_i ≈ s_i b_π(i). The correspondence-free proposals of the signature start use float32;
every rotation is refit in float64 afterwards. Pure tensor math: torch and scipy only.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import lru_cache

import torch
from scipy.optimize import linear_sum_assignment

from geolip.solvers.procrustes import orthogonal_procrustes, same_dim, unit_axes

SIGNATURE_SIZE = 16
"""Number of largest within-codebook |cos| values in an axis signature."""

CONSISTENCY_SCALE = 0.1
"""Tolerated |cos| disagreement between two candidate pairs in the spectral matching."""

SIGN_SYNC_ITERS = 30
"""Maximum power iterations (consistency scores and sign synchronisation)."""

SIGN_SYNC_TOL = 1e-6
"""A power iteration stops early once its unit iterate moves less than this (float32 work)."""

OUTLIER_TIE_BREAK = 1e-3
"""Weight of |cos| among pairs beyond the inlier threshold in the assignment objective."""

NULL_STD_FLOOR = 1e-6
"""Null std (degrees) at or below which no z-score is given: every codebook pair aligns
exactly there (e.g. a single axis, or D = 1), and the spread is rounding noise."""

DUPLICATE_START_TOL = 1e-12
"""Two start rotations closer than this (Frobenius) count as the same start."""

ALIGNED_Z = -3.0
"""z-score of the mean residual at or below which an alignment reads "aligned beyond chance":
three null standard deviations better than aligning i.i.d. codebooks of the same shapes (a
one-sided ~0.1 % tail under a normal null). Anything above reads "indistinguishable from
random"."""

VERDICT_ALIGNED = "aligned beyond chance"
VERDICT_RANDOM = "indistinguishable from random"


@dataclass(frozen=True)
class ProjectiveAlignment:
    """Result of :func:`align_projective`; M = min(K_A, K_B) matched pairs.

    Attributes:
        rotation: (D, D) float64 R with R a_i ≈ s_i b_j. R and −R align equally well
            (axes carry no sign); where both are allowed (not ``proper``, or D even) the one
            with tr R ≥ 0 is reported.
        matching: (M, 2) int64 rows (i in source, j in target), sorted by i.
        signs: (M,) int64 ±1 with R a_i ≈ signs · b_j.
        residual_deg: (M,) float64 projective angle between R a_i and b_j, degrees.
        inliers: (M,) bool, residual ≤ ``inlier_deg``.
        score: mean |cos| over matched pairs.
        iterations: ICP iterations of the winning start.
        start: name of the winning start (``signature``, ``identity``, ``anchored`` or
            ``random-<n>``).
        null_mean_deg, null_std_deg: mean and sample std of the mean residual (degrees)
            of the same alignment between i.i.d. uniform codebooks of the same shapes;
            ``None`` without null trials.
        z_score: (mean_residual_deg − null_mean_deg) / null_std_deg; negative is better than
            chance. ``None`` without null trials or when the null std is ≤ NULL_STD_FLOOR
            (degenerate shapes that always align exactly).
        null_distance_mean, null_distance_std: mean and sample std of the RMS chordal
            distance (:attr:`rms_chordal`) over the same null alignments; ``None`` without.
        null_distances: (null_trials,) float64 those null distances; ``None`` without.
    """

    rotation: torch.Tensor
    matching: torch.Tensor
    signs: torch.Tensor
    residual_deg: torch.Tensor
    inliers: torch.Tensor
    score: float
    iterations: int
    start: str
    null_mean_deg: float | None
    null_std_deg: float | None
    z_score: float | None
    null_distance_mean: float | None = None
    null_distance_std: float | None = None
    null_distances: torch.Tensor | None = None

    @property
    def mean_residual_deg(self) -> float:
        return self.residual_deg.mean().item()

    @property
    def verdict(self) -> str | None:
        """``"aligned beyond chance"`` when z ≤ :data:`ALIGNED_Z`, else ``"indistinguishable
        from random"``; ``None`` without a z-score."""
        return alignment_verdict(self.z_score)

    @property
    def distance_z(self) -> float | None:
        """(rms_chordal − null_distance_mean) / null_distance_std; ``None`` without a null or
        when its std is ≤ NULL_STD_FLOOR."""
        if self.null_distance_mean is None or self.null_distance_std is None:
            return None
        return distance_z_score(self.rms_chordal, self.null_distance_mean, self.null_distance_std)

    @property
    def distance_percentile(self) -> float | None:
        """Mid-rank percentile of :attr:`rms_chordal` among the null distances, in [0, 100]."""
        if self.null_distances is None:
            return None
        return distance_percentile(self.rms_chordal, self.null_distances)

    @property
    def rms_chordal(self) -> float:
        """sqrt(mean(2 − 2|cos|)) over matched pairs, as 2 − 2 cos θ = (2 sin(θ/2))²."""
        half = torch.deg2rad(self.residual_deg) / 2
        return (2 * torch.sin(half)).square().mean().sqrt().item()


@dataclass(frozen=True)
class _Matched:
    """One assignment under a fixed rotation; tensors are (M,) aligned with ``rows``/``cols``."""

    rows: torch.Tensor
    cols: torch.Tensor
    signs: torch.Tensor
    abs_cos: torch.Tensor
    residual_deg: torch.Tensor
    inliers: torch.Tensor

    def same_as(self, other: _Matched) -> bool:
        return (
            torch.equal(self.rows, other.rows)
            and torch.equal(self.cols, other.cols)
            and torch.equal(self.signs, other.signs)
            and torch.equal(self.inliers, other.inliers)
        )


@dataclass(frozen=True)
class _Fit:
    rotation: torch.Tensor
    matched: _Matched
    iterations: int

    @property
    def score(self) -> float:
        return self.matched.abs_cos.mean().item()

    def trimmed_residual(self, inlier_deg: float) -> float:
        """mean_i min(residual_i, inlier_deg): the loss that ranks starts (lower is better)."""
        return self.matched.residual_deg.clamp(max=inlier_deg).mean().item()


def _max_assignment(c: torch.Tensor, floor: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Matching of min(K_A, K_B) pairs in a (K_A, K_B) |cos| matrix maximising
    Σ max(c_ij, floor) + OUTLIER_TIE_BREAK · c_ij.

    Capping at ``floor`` = cos(inlier_deg) makes every outlier pair worth the same, so a
    maximum-weight matching does not break up an exact pair just to improve two pairs of
    junk (which plain Σ|cos| does when K_A, K_B share only some axes); the small linear term
    still orders the outlier pairs by |cos|. The weight is increasing in c, so when every
    row (or, for K_A > K_B, every column) has a distinct argmax, taking it is optimal and no
    assignment solver runs. Returns (rows, cols) int64, sorted by row.
    """
    k_a, k_b = c.shape
    if k_a <= k_b:
        cols = c.argmax(dim=1)
        if torch.bincount(cols, minlength=k_b).max() <= 1:
            return torch.arange(k_a), cols
    else:
        rows = c.argmax(dim=0)
        if torch.bincount(rows, minlength=k_a).max() <= 1:
            order = torch.argsort(rows)
            return rows[order], torch.arange(k_b)[order]
    weight = c.clamp(min=floor) + OUTLIER_TIE_BREAK * c
    rows_np, cols_np = linear_sum_assignment(weight.numpy(), maximize=True)
    return torch.from_numpy(rows_np).long(), torch.from_numpy(cols_np).long()


def _assign(
    a: torch.Tensor, b: torch.Tensor, rotation: torch.Tensor, inlier_deg: float
) -> _Matched:
    """Match the rotated source axes to the target axes (see :func:`_max_assignment`)."""
    rotated = a @ rotation.T
    signed = rotated @ b.T
    rows, cols = _max_assignment(signed.abs(), math.cos(math.radians(inlier_deg)))
    pair_cos = signed[rows, cols]
    signs = torch.where(pair_cos < 0, -1, 1)
    x, y = rotated[rows], signs.unsqueeze(1) * b[cols]
    # θ = 2 atan2(‖x − y‖, ‖x + y‖) stays accurate near 0, where acos|cos| does not.
    residual = torch.rad2deg(2 * torch.atan2((x - y).norm(dim=1), (x + y).norm(dim=1)))
    return _Matched(
        rows=rows,
        cols=cols,
        signs=signs,
        abs_cos=pair_cos.abs().clamp(max=1.0),
        residual_deg=residual,
        inliers=residual <= inlier_deg,
    )


def _refit(a: torch.Tensor, b: torch.Tensor, matched: _Matched, proper: bool) -> torch.Tensor:
    """Procrustes on the inlier pairs, or on all matched pairs when fewer than D are inliers."""
    keep = matched.inliers if int(matched.inliers.sum()) >= a.shape[1] else slice(None)
    rows, cols, signs = matched.rows[keep], matched.cols[keep], matched.signs[keep]
    return orthogonal_procrustes(a[rows], signs.unsqueeze(1).double() * b[cols], proper=proper)


def _icp(
    a: torch.Tensor,
    b: torch.Tensor,
    rotation: torch.Tensor,
    *,
    proper: bool,
    inlier_deg: float,
    max_iter: int,
) -> _Fit:
    """Alternate assignment and Procrustes refit until matching, signs and inliers are fixed.

    The returned matching is always the one evaluated under the returned rotation.
    """
    matched = _assign(a, b, rotation, inlier_deg)
    for iteration in range(1, max_iter + 1):
        rotation = _refit(a, b, matched, proper)
        new = _assign(a, b, rotation, inlier_deg)
        if new.same_as(matched):
            return _Fit(rotation, new, iteration)
        matched = new
    return _Fit(rotation, matched, max_iter)


def _signature(x: torch.Tensor, m: int) -> torch.Tensor:
    """(K, m) largest |cos| of each axis to the other axes of its codebook, descending.

    Invariant to rotating the codebook, flipping axis signs and permuting axes.
    """
    c = (x @ x.T).abs_()
    c.fill_diagonal_(-1.0)
    return c.topk(m, dim=1).values


@dataclass(frozen=True)
class _Candidates:
    """Candidate pairs (rows[k], cols[k]) sorted by ascending descriptor distance."""

    rows: torch.Tensor
    cols: torch.Tensor
    distance: torch.Tensor


def _mutual_nearest(x: torch.Tensor, y: torch.Tensor) -> _Candidates:
    """Pairs (i, j) of rows of x (K_A, m) and y (K_B, m) that are mutual Euclidean NNs."""
    dist = torch.cdist(x, y).double()
    nn_xy, nn_yx = dist.argmin(dim=1), dist.argmin(dim=0)
    rows = torch.nonzero(nn_yx[nn_xy] == torch.arange(x.shape[0])).flatten()
    cols = nn_xy[rows]
    distance = dist[rows, cols]
    order = torch.argsort(distance, stable=True)
    return _Candidates(rows[order], cols[order], distance[order])


def _signature_candidates(a: torch.Tensor, b: torch.Tensor) -> _Candidates | None:
    """Mutual nearest neighbours in signature space; ``None`` when a codebook has one axis.

    Signatures are compared in float32: they only propose pairs.
    """
    m = min(SIGNATURE_SIZE, a.shape[0] - 1, b.shape[0] - 1)
    if m < 1:
        return None
    return _mutual_nearest(_signature(a.float(), m), _signature(b.float(), m))


def _leading_vector(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Unit leading eigenvector of a symmetric (n, n) matrix by power iteration from v (n,)."""
    v = v / v.norm()
    for _ in range(SIGN_SYNC_ITERS):
        previous, v = v, x @ v
        v = v / v.norm()
        if (v - previous).norm() < SIGN_SYNC_TOL:
            break
    return v


def _synchronise(
    a: torch.Tensor, b: torch.Tensor, candidates: _Candidates
) -> tuple[torch.Tensor, torch.Tensor]:
    """Consistency scores and relative signs of candidate pairs (a_k, b_k), float64 (n,) each.

    Spectral matching: correct pairs agree pairwise, |⟨a_k, a_l⟩| = |⟨b_k, b_l⟩|, so the
    Perron vector of κ_kl = exp(−((|⟨a_k, a_l⟩| − |⟨b_k, b_l⟩|) / CONSISTENCY_SCALE)²) scores
    how consistent each pair is with the rest. Sign synchronisation: for correct pairs
    X_kl = κ_kl ⟨a_k, a_l⟩⟨b_k, b_l⟩ = s_k s_l κ_kl ⟨a_k, a_l⟩², i.e. S P S with P ≥ 0, so the
    leading eigenvector of X has the sign pattern of s (up to one global sign); its power
    iteration starts from the column of the most consistent pair, already sign-correct when
    exact. Computed in float32.
    """
    a_c, b_c = a[candidates.rows].float(), b[candidates.cols].float()
    gram_a, gram_b = a_c @ a_c.T, b_c @ b_c.T
    # In-place chains: these are (n, n) with n up to min(K_A, K_B).
    kappa = gram_a.abs().sub_(gram_b.abs()).div_(CONSISTENCY_SCALE).square_().neg_().exp_()
    trust = _leading_vector(kappa, torch.ones(kappa.shape[0])).abs()
    x = kappa.mul_(gram_a).mul_(gram_b)
    signs = torch.where(_leading_vector(x, x[:, trust.argmax()]) < 0, -1.0, 1.0)
    return trust.double(), signs.double()


def _fit_pairs(
    a_c: torch.Tensor, b_c: torch.Tensor, signs: torch.Tensor, weights: torch.Tensor, proper: bool
) -> torch.Tensor:
    """Weighted Procrustes R a_k ≈ signs_k b_k for signs known up to one global flip."""
    signed = signs.unsqueeze(1) * b_c
    # Flipping the free global sign maps the O(D) fit R to −R; in odd D only one is proper.
    odd = a_c.shape[1] % 2 == 1
    if proper and odd and torch.linalg.det(orthogonal_procrustes(a_c, signed, weights)) < 0:
        signed = -signed
    return orthogonal_procrustes(a_c, signed, weights, proper)


def _signature_rotation(
    a: torch.Tensor,
    b: torch.Tensor,
    candidates: _Candidates,
    trust: torch.Tensor,
    signs: torch.Tensor,
    proper: bool,
) -> torch.Tensor:
    """Procrustes on synchronised candidates weighted by trust² / (1 + signature distance)."""
    weights = trust.square() / (1.0 + candidates.distance)
    return _fit_pairs(a[candidates.rows], b[candidates.cols], signs, weights, proper)


def _consistent_anchors(a_c: torch.Tensor, b_c: torch.Tensor, trust: torch.Tensor) -> torch.Tensor:
    """Greedy clique: indices of at most SIGNATURE_SIZE candidate pairs, taken in descending
    trust, each agreeing with every one taken before (||⟨a_k, a_l⟩| − |⟨b_k, b_l⟩|| ≤ scale).
    """
    order = torch.argsort(trust, descending=True, stable=True)
    compatible = torch.ones(trust.shape[0], dtype=torch.bool)
    anchors: list[int] = []
    while len(anchors) < SIGNATURE_SIZE and compatible[order].any():
        k = int(order[compatible[order]][0])
        anchors.append(k)
        gap = ((a_c @ a_c[k]).abs() - (b_c @ b_c[k]).abs()).abs()
        compatible &= gap <= CONSISTENCY_SCALE
        compatible[k] = False
    return torch.tensor(anchors, dtype=torch.long)


def _anchored_rotation(
    a: torch.Tensor,
    b: torch.Tensor,
    candidates: _Candidates,
    trust: torch.Tensor,
    signs: torch.Tensor,
    proper: bool,
) -> torch.Tensor:
    """Seed-and-grow start for codebooks that share only part of their axes.

    A consistent clique of trusted candidate pairs serves as anchors; every axis gets the
    descriptor of its cosines to its codebook's anchors, f_a(i) = (⟨a_i, a_p⟩)_p and
    f_b(j) = (s_p ⟨b_j, b_p⟩)_p, which agree up to the sign s_i for a correct pair since
    ⟨a_i, a_p⟩ = s_i s_p ⟨b_j, b_p⟩. Pairs are the mutual nearest |f| descriptors, signs come
    from sign⟨f_a(i), f_b(j)⟩ and weights from exp(−mean_p Δ_p² / scale²).
    """
    a_c, b_c = a[candidates.rows], b[candidates.cols]
    anchors = _consistent_anchors(a_c, b_c, trust)
    f_a = a @ a_c[anchors].T
    f_b = (b @ b_c[anchors].T) * signs[anchors]
    pairs = _mutual_nearest(f_a.abs(), f_b.abs())
    weights = torch.exp(-pairs.distance.square() / (anchors.numel() * CONSISTENCY_SCALE**2))
    dots = (f_a[pairs.rows] * f_b[pairs.cols]).sum(dim=1)
    return _fit_pairs(
        a[pairs.rows], b[pairs.cols], torch.where(dots < 0, -1.0, 1.0), weights, proper
    )


def _random_rotation(d: int, generator: torch.Generator, proper: bool) -> torch.Tensor:
    """Haar-random element of O(D) (of SO(D) when ``proper``): sign-fixed QR of a Gaussian."""
    q, r = torch.linalg.qr(torch.randn(d, d, generator=generator, dtype=torch.float64))
    q = q * torch.where(torch.diagonal(r) < 0, -1.0, 1.0)
    if proper and torch.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def _starts(
    a: torch.Tensor, b: torch.Tensor, proper: bool, seed: int
) -> Iterator[tuple[str, torch.Tensor]]:
    """Initial rotations in trial order: signature, identity, anchored, random-1, random-2…."""
    d = a.shape[1]
    candidates = _signature_candidates(a, b)
    if candidates is not None:
        trust, signs = _synchronise(a, b, candidates)
        yield "signature", _signature_rotation(a, b, candidates, trust, signs, proper)
    yield "identity", torch.eye(d, dtype=torch.float64)
    if candidates is not None and candidates.rows.numel() >= 2:
        yield "anchored", _anchored_rotation(a, b, candidates, trust, signs, proper)
    generator = torch.Generator().manual_seed(seed)
    n = 0
    while True:
        n += 1
        yield f"random-{n}", _random_rotation(d, generator, proper)


def _neighbour_angle_deg(x: torch.Tensor) -> torch.Tensor:
    """(K,) float64 projective angle (degrees) from each axis to its nearest other axis of the
    (K, D) codebook; 90 when K = 1."""
    c = (x @ x.T).abs_()
    c.fill_diagonal_(0.0)
    return torch.rad2deg(torch.arccos(c.max(dim=1).values.clamp(max=1.0)))


def _best_fit(
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    proper: bool,
    n_starts: int,
    inlier_deg: float,
    max_iter: int,
    seed: int,
) -> tuple[str, _Fit]:
    """Run ICP from up to ``n_starts`` distinct starts; keep the lowest trimmed residual.

    Ranking by mean |cos| instead would let a wrong rotation that brings every axis
    moderately close beat the right one that matches the shared axes exactly and leaves the
    unshared ones far off. Ties go to the higher score, then to the earlier start. Trials stop
    once the winner leaves no doubt: every pair is an inlier and lies closer to its target
    axis than a quarter of that axis's angle to its nearest neighbour in the target codebook
    (few, tightly packed axes in low D have near-symmetries under which a wrong rotation
    keeps every pair an inlier).
    """
    tried: list[torch.Tensor] = []
    best: tuple[tuple[float, float], str, _Fit] | None = None
    spacing: torch.Tensor | None = None
    for name, initial in _starts(a, b, proper, seed):
        if len(tried) == n_starts:
            break
        if any(torch.linalg.matrix_norm(initial - r) < DUPLICATE_START_TOL for r in tried):
            continue
        tried.append(initial)
        fit = _icp(a, b, initial, proper=proper, inlier_deg=inlier_deg, max_iter=max_iter)
        key = (fit.trimmed_residual(inlier_deg), -fit.score)
        if best is None or key < best[0]:
            best = (key, name, fit)
        if best[2].matched.inliers.all():
            spacing = _neighbour_angle_deg(b) if spacing is None else spacing
            if (best[2].matched.residual_deg < spacing[best[2].matched.cols] / 4).all():
                break
    assert best is not None  # n_starts ≥ 1 and the identity start always exists
    return best[1], best[2]


def align_projective(
    source: torch.Tensor,
    target: torch.Tensor,
    *,
    proper: bool = False,
    n_starts: int = 4,
    inlier_deg: float = 20.0,
    max_iter: int = 50,
    null_trials: int = 16,
    seed: int = 0,
) -> ProjectiveAlignment:
    """Align two codebooks as point sets of RP^(D−1): unknown matching, signs and rotation.

    ICP with assignment: under R, match min(K_A, K_B) pairs by maximum total |cos(R a_i, b_j)|
    with outlier pairs capped at cos(``inlier_deg``) (argmax when it is injective, else
    Hungarian; see :func:`_max_assignment`), read each pair's sign from its signed cosine,
    call pairs within ``inlier_deg`` inliers and refit R by Procrustes on them (on all pairs
    when fewer than D); repeat until nothing changes or ``max_iter``.

    Starts, in order, duplicates skipped, at most ``n_starts``: ``signature`` (mutual nearest
    neighbours of rotation/sign/permutation-invariant top-16 |cos| signatures, scored by
    spectral matching, signs by spectral synchronisation, weighted Procrustes), ``identity``,
    ``anchored`` (seed-and-grow from a consistent clique of signature pairs, for codebooks
    sharing only part of their axes; :func:`_anchored_rotation`), then ``random-<n>`` Haar
    rotations drawn from ``seed``. The start with the lowest trimmed residual
    mean_i min(θ_i, ``inlier_deg``) wins (ties: higher score); trials stop once a winner has
    every pair as an inlier, each within a quarter of its target axis's nearest-neighbour
    angle. R and −R are equivalent (see :class:`ProjectiveAlignment`). When fewer than about
    80 % of either codebook's axes are shared, recovery is not reliable: the signatures then
    differ too much.

    With ``null_trials`` ≥ 2 the same alignment is run between that many pairs of i.i.d.
    uniform codebooks of shapes (K_A, D), (K_B, D) (seeded from ``seed``, cached per
    configuration) to give a z-score of the mean residual.

    Args:
        source: (K_A, D) axes, any non-zero norm, sign irrelevant.
        target: (K_B, D) axes; K_B may differ from K_A.
        proper: restrict R to SO(D).
        n_starts: maximum number of distinct starts (≥ 1).
        inlier_deg: residual threshold (degrees) for a pair to be used in the refit.
        max_iter: maximum ICP iterations per start (≥ 1).
        null_trials: 0 (no z-score) or ≥ 2 null alignments.
        seed: seed of the random starts and of the null codebooks.

    Returns:
        :class:`ProjectiveAlignment`.
    """
    a, b = _validated_axes(source, target, n_starts, max_iter, null_trials, inlier_deg)
    start, fit = _best_fit(
        a, b, proper=proper, n_starts=n_starts, inlier_deg=inlier_deg, max_iter=max_iter, seed=seed
    )
    result = _alignment_result(start, fit, proper)
    if null_trials == 0:
        return result
    residuals, distances = _null_fits(
        len(a), len(b), a.shape[1], proper, n_starts, inlier_deg, max_iter, null_trials, seed
    )
    result = _with_null_statistics(result, residuals.mean().item(), residuals.std().item())
    return replace(
        result,
        null_distance_mean=distances.mean().item(),
        null_distance_std=distances.std().item(),
        null_distances=distances,
    )


def alignment_verdict(z_score: float | None) -> str | None:
    """The reading of an alignment z-score: :data:`VERDICT_ALIGNED` at or below
    :data:`ALIGNED_Z`, else :data:`VERDICT_RANDOM`; ``None`` when there is no z-score."""
    if z_score is None:
        return None
    return VERDICT_ALIGNED if z_score <= ALIGNED_Z else VERDICT_RANDOM


def distance_percentile(value: float, null: torch.Tensor) -> float:
    """Mid-rank percentile 100 · (#{null < v} + ½ #{null = v}) / n of ``value`` in ``null``."""
    below = int((null < value).sum())
    ties = int((null == value).sum())
    return 100.0 * (below + 0.5 * ties) / null.numel()


def distance_z_score(value: float, null_mean: float, null_std: float) -> float | None:
    """(value − null_mean) / null_std; ``None`` when the std is ≤ NULL_STD_FLOOR."""
    return None if null_std <= NULL_STD_FLOOR else (value - null_mean) / null_std


def distance_null(
    k_a: int,
    k_b: int,
    dim: int,
    *,
    null_trials: int = 16,
    seed: int = 0,
    proper: bool = False,
    n_starts: int = 4,
    inlier_deg: float = 20.0,
    max_iter: int = 50,
) -> torch.Tensor:
    """(null_trials,) float64 RMS chordal distances after aligning pairs of i.i.d. uniform
    codebooks of shapes (k_a, dim), (k_b, dim): the null of :meth:`Codebook.distance`.

    The same cached trials as the z-score of :func:`align_projective` with these settings.
    """
    if null_trials < 2:
        raise ValueError(f"null_trials must be >= 2 (a std needs two), got {null_trials}")
    return _null_fits(
        int(k_a), int(k_b), int(dim), proper, n_starts, inlier_deg, max_iter, null_trials, seed
    )[1]


def _validated_axes(
    source: torch.Tensor,
    target: torch.Tensor,
    n_starts: int,
    max_iter: int,
    null_trials: int,
    inlier_deg: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit float64 source and target axes, after checking them and the search settings."""
    a = unit_axes(source, "source")
    b = unit_axes(target, "target")
    same_dim(a, b, "source and target")
    if n_starts < 1 or max_iter < 1:
        raise ValueError(f"n_starts and max_iter must be >= 1, got {n_starts} and {max_iter}")
    if null_trials < 0 or null_trials == 1:
        raise ValueError(f"null_trials must be 0 or >= 2 (a std needs two), got {null_trials}")
    if not 0.0 <= inlier_deg <= 90.0:
        raise ValueError(f"inlier_deg must lie in [0, 90], got {inlier_deg}")
    return a, b


def _alignment_result(start: str, fit: _Fit, proper: bool) -> ProjectiveAlignment:
    """The winning fit as reported, without null statistics: of R and −R (signs flipped with
    it), the one with tr R ≥ 0 wherever both are allowed."""
    rotation, signs = fit.rotation, fit.matched.signs
    d = rotation.shape[0]
    if (not proper or d % 2 == 0) and torch.trace(rotation) < 0:
        rotation, signs = -rotation, -signs
    m = fit.matched
    return ProjectiveAlignment(
        rotation=rotation,
        matching=torch.stack([m.rows, m.cols], dim=1),
        signs=signs.long(),
        residual_deg=m.residual_deg,
        inliers=m.inliers,
        score=fit.score,
        iterations=fit.iterations,
        start=start,
        null_mean_deg=None,
        null_std_deg=None,
        z_score=None,
    )


def _with_null_statistics(
    result: ProjectiveAlignment, null_mean: float, null_std: float
) -> ProjectiveAlignment:
    """``result`` with the null mean and std of the mean residual and, when the std exceeds
    NULL_STD_FLOOR, the z-score of its own mean residual."""
    z = (result.mean_residual_deg - null_mean) / null_std if null_std > NULL_STD_FLOOR else None
    return replace(result, null_mean_deg=null_mean, null_std_deg=null_std, z_score=z)


@lru_cache(maxsize=128)
def _null_fits(
    k_a: int,
    k_b: int,
    d: int,
    proper: bool,
    n_starts: int,
    inlier_deg: float,
    max_iter: int,
    null_trials: int,
    seed: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per null trial, the mean residual (deg) and the RMS chordal distance of aligning two
    i.i.d. uniform codebooks; two (null_trials,) float64 tensors (cached: do not modify)."""
    generator = torch.Generator().manual_seed(seed)
    values, distances = [], []
    for _ in range(null_trials):
        x = torch.randn(k_a, d, generator=generator, dtype=torch.float64)
        y = torch.randn(k_b, d, generator=generator, dtype=torch.float64)
        fit = align_projective(
            x,
            y,
            proper=proper,
            n_starts=n_starts,
            inlier_deg=inlier_deg,
            max_iter=max_iter,
            null_trials=0,
            seed=seed,
        )
        values.append(fit.mean_residual_deg)
        distances.append(fit.rms_chordal)
    return torch.tensor(values, dtype=torch.float64), torch.tensor(distances, dtype=torch.float64)


# --------------------------------------------------------------------------------------------
# Whitened Procrustes
