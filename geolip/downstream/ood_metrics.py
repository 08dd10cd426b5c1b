"""OOD detection metrics with OpenOOD's (v1.5) definitions; OOD is the positive class.

Scores are OOD scores: higher means more likely out of distribution (OpenOOD's ``conf`` is the
negated score). With ``is_ood`` = 1 for OOD:

- AUROC: area under the ROC curve of ``roc_curve(is_ood, score)`` (trapezoids).
- FPR@95: the false-positive rate (share of in-distribution inputs flagged) at the first ROC
  point whose true-positive rate (share of OOD inputs flagged) reaches 0.95.
- AUPR-in: area (trapezoids over ``precision_recall_curve``) with ID as the positive class and
  −score as its score; AUPR-out: the same with OOD positive and the score itself.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from sklearn import metrics

TPR_LEVEL = 0.95


@dataclass(frozen=True)
class OODMetrics:
    """AUROC, FPR at 95 % TPR, AUPR-in and AUPR-out, all in [0, 1]; counts of each side."""

    auroc: float
    fpr95: float
    aupr_in: float
    aupr_out: float
    n_id: int
    n_ood: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def _numpy(x: torch.Tensor | np.ndarray | list[float]) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64).ravel()


def ood_metrics(
    score_id: torch.Tensor | np.ndarray | list[float],
    score_ood: torch.Tensor | np.ndarray | list[float],
) -> OODMetrics:
    """Metrics of an OOD score (higher = more OOD) on in-distribution and OOD inputs.

    Raises:
        ValueError: either side empty, or a score is NaN or infinite.
    """
    s_id, s_ood = _numpy(score_id), _numpy(score_ood)
    if s_id.size == 0 or s_ood.size == 0:
        raise ValueError(f"need scores on both sides, got {s_id.size} ID and {s_ood.size} OOD")
    score = np.concatenate([s_id, s_ood])
    if not np.isfinite(score).all():
        raise ValueError("OOD scores contain NaN or ±inf")
    is_ood = np.concatenate([np.zeros(s_id.size, dtype=int), np.ones(s_ood.size, dtype=int)])
    fpr, tpr, _ = metrics.roc_curve(is_ood, score)
    precision_in, recall_in, _ = metrics.precision_recall_curve(1 - is_ood, -score)
    precision_out, recall_out, _ = metrics.precision_recall_curve(is_ood, score)
    return OODMetrics(
        auroc=float(metrics.auc(fpr, tpr)),
        fpr95=float(fpr[np.argmax(tpr >= TPR_LEVEL)]),
        aupr_in=float(metrics.auc(recall_in, precision_in)),
        aupr_out=float(metrics.auc(recall_out, precision_out)),
        n_id=int(s_id.size),
        n_ood=int(s_ood.size),
    )
