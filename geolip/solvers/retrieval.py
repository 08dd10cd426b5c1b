"""Cross-domain retrieval scores and metrics: cosine nearest neighbour and CSLS.

Queries and gallery items are rows in one shared space. Nearest neighbour ranks the gallery
by cosine. CSLS (cross-domain similarity local scaling, Conneau et al. 2018, as MUSE reports
it) corrects for hubs, gallery items that are everybody's neighbour:

    CSLS(q, g) = 2 cos(q, g) − r_G(q) − r_Q(g),

with r_G(q) the mean cosine of q to its k nearest gallery items and r_Q(g) the mean cosine of
g to its k nearest queries. Relevance is given by group ids: gallery item j is a correct
answer to query i when their groups are equal (the same caption, or the same class). Pure
tensor math: torch only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

CSLS_K = 10
"""Neighbourhood size of CSLS, MUSE's default."""


def _rows(x: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.ndim != 2:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a 2-D tensor (N, D), got {shape}")
    if x.shape[0] < 1:
        raise ValueError(f"{name} needs at least one row")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or Inf")
    return x.detach().to(torch.float64)


def cosine_scores(queries: torch.Tensor, gallery: torch.Tensor) -> torch.Tensor:
    """(Q, D) and (G, D) rows → (Q, G) float64 cosines (zero rows score 0 against all)."""
    q, g = _rows(queries, "queries"), _rows(gallery, "gallery")
    if q.shape[1] != g.shape[1]:
        raise ValueError(f"queries and gallery must share D, got {q.shape[1]} and {g.shape[1]}")
    q = q / q.norm(dim=1, keepdim=True).clamp(min=1e-300)
    g = g / g.norm(dim=1, keepdim=True).clamp(min=1e-300)
    return q @ g.T


def csls_scores(queries: torch.Tensor, gallery: torch.Tensor, k: int = CSLS_K) -> torch.Tensor:
    """(Q, G) CSLS scores (module docstring); k is capped at the side's size.

    Ranking a query's row by CSLS differs from ranking by cosine only through r_Q(g), the hub
    penalty of each gallery item; r_G(q) is constant along the row.
    """
    if k < 1:
        raise ValueError(f"CSLS needs k >= 1, got {k}")
    cos = cosine_scores(queries, gallery)
    r_gallery = cos.topk(min(k, cos.shape[1]), dim=1).values.mean(dim=1)  # (Q,) per query
    r_query = cos.topk(min(k, cos.shape[0]), dim=0).values.mean(dim=0)  # (G,) per item
    return 2 * cos - r_gallery.unsqueeze(1) - r_query.unsqueeze(0)


@dataclass(frozen=True)
class RetrievalMetrics:
    """How well queries find their gallery partners.

    Attributes:
        precision: k → fraction of queries with a relevant item among their top k (MUSE's
            "precision@k", i.e. hit rate at k).
        chance: k → the same expected under scores that rank the gallery at random.
        coverage: fraction of gallery items that are some query's top-1 (1.0: no hubs).
        median_rank: median over queries of the rank (1 = first) of the first relevant item.
        n_queries, n_gallery: sizes.
    """

    precision: dict[int, float]
    chance: dict[int, float]
    coverage: float
    median_rank: float
    n_queries: int
    n_gallery: int

    def as_dict(self) -> dict[str, float | int]:
        doc: dict[str, float | int] = {}
        for k, v in self.precision.items():
            doc[f"p@{k}"] = v
            doc[f"chance_p@{k}"] = self.chance[k]
        doc.update(
            coverage=self.coverage,
            median_rank=self.median_rank,
            n_queries=self.n_queries,
            n_gallery=self.n_gallery,
        )
        return doc


def relevance(query_groups: torch.Tensor, gallery_groups: torch.Tensor) -> torch.Tensor:
    """(Q, G) bool: gallery item j answers query i when their group ids are equal."""
    return query_groups.reshape(-1, 1) == gallery_groups.reshape(1, -1)


def retrieval_metrics(
    scores: torch.Tensor, relevant: torch.Tensor, ks: tuple[int, ...] = (1, 5)
) -> RetrievalMetrics:
    """Metrics of a (Q, G) score matrix (higher = better) against (Q, G) bool relevance.

    Ties are broken towards the lower gallery index (stable sort), identically for every
    method. Queries without any relevant item are refused, since no method could answer them.
    """
    if scores.ndim != 2 or scores.shape != relevant.shape:
        raise ValueError(
            f"scores and relevance must be (Q, G) of one shape, got {tuple(scores.shape)} "
            f"and {tuple(relevant.shape)}"
        )
    if not torch.isfinite(scores).all():
        raise ValueError("scores contain NaN or Inf")
    n_relevant = relevant.sum(dim=1)
    if (n_relevant == 0).any():
        raise ValueError(f"{int((n_relevant == 0).sum())} queries have no relevant gallery item")
    q, g = scores.shape
    order = scores.argsort(dim=1, descending=True, stable=True)
    hits = relevant.gather(1, order)  # (Q, G) relevance in ranked order
    first = hits.to(torch.int8).argmax(dim=1) + 1  # rank of the first relevant item
    precision = {k: (first <= k).double().mean().item() for k in ks}
    chance = {k: _chance_hit(n_relevant, g, k) for k in ks}
    top1 = order[:, 0]
    coverage = torch.unique(top1).numel() / g
    return RetrievalMetrics(
        precision=precision,
        chance=chance,
        coverage=coverage,
        median_rank=first.double().median().item(),
        n_queries=q,
        n_gallery=g,
    )


def _chance_hit(n_relevant: torch.Tensor, g: int, k: int) -> float:
    """Mean over queries of P(a random top-k of g items holds one of r relevant ones) =
    1 − C(g − r, k) / C(g, k)."""
    k = min(k, g)
    total = 0.0
    for r in n_relevant.tolist():
        miss = math.comb(g - r, k) / math.comb(g, k) if g - r >= k else 0.0
        total += 1.0 - miss
    return total / len(n_relevant)
