"""OOD metrics: OpenOOD v1.5 definitions, OOD positive; checked by hand and against sklearn."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, roc_auc_score

from geolip.downstream.ood_metrics import ood_metrics


def test_hand_computed_example() -> None:
    # ID scores 0.1 0.4 0.35 0.8, OOD scores 0.9 0.5 0.7.
    m = ood_metrics([0.1, 0.4, 0.35, 0.8], [0.9, 0.5, 0.7])
    # pairs (ood > id): 0.9 beats 4, 0.5 beats 3, 0.7 beats 3 → 10 of 12
    assert m.auroc == pytest.approx(10 / 12)
    # 95 % of OOD flagged needs threshold ≤ 0.5: flags ID 0.8 → FPR 1/4
    assert m.fpr95 == pytest.approx(0.25)
    assert (m.n_id, m.n_ood) == (4, 3)


def test_perfect_and_inverted_detectors() -> None:
    good = ood_metrics(torch.zeros(5), torch.ones(5))
    assert (good.auroc, good.fpr95, good.aupr_in, good.aupr_out) == (1.0, 0.0, 1.0, 1.0)
    bad = ood_metrics(torch.ones(5), torch.zeros(5))
    assert bad.auroc == 0.0 and bad.fpr95 == 1.0


def _trapezoid_aupr(positive: np.ndarray, score: np.ndarray) -> float:
    """Area under precision(recall), trapezoids from (recall 0, precision 1), scores untied."""
    order = np.argsort(-score)
    tp = np.cumsum(positive[order])
    fp = np.cumsum(1 - positive[order])
    precision = np.r_[1.0, tp / (tp + fp)]
    recall = np.r_[0.0, tp / positive.sum()]
    return float(np.sum(np.diff(recall) * (precision[1:] + precision[:-1]) / 2))


@given(seed=st.integers(0, 2**16), n_id=st.integers(5, 40), n_ood=st.integers(5, 40))
def test_agrees_with_sklearn(seed: int, n_id: int, n_ood: int) -> None:
    rng = np.random.default_rng(seed)
    s_id, s_ood = rng.normal(0, 1, n_id), rng.normal(1, 1, n_ood)
    m = ood_metrics(s_id, s_ood)
    y = np.r_[np.zeros(n_id), np.ones(n_ood)]
    s = np.r_[s_id, s_ood]
    assert m.auroc == pytest.approx(roc_auc_score(y, s))
    # AUPR is the trapezoid area under the precision-recall points, recomputed here directly
    assert m.aupr_out == pytest.approx(_trapezoid_aupr(y, s), abs=1e-12)
    assert m.aupr_in == pytest.approx(_trapezoid_aupr(1 - y, -s), abs=1e-12)
    # and differs from step-wise average precision (another definition) by a little
    assert abs(m.aupr_out - average_precision_score(y, s)) < 0.5 / n_ood + 0.05
    # swapping the roles of ID and OOD (and negating) swaps AUPR-in and AUPR-out
    swapped = ood_metrics(-s_ood, -s_id)
    assert swapped.aupr_in == pytest.approx(m.aupr_out) and swapped.auroc == pytest.approx(m.auroc)
    # FPR@95 from its definition: the smallest threshold set flagging ≥ 95 % of OOD
    thresholds = np.sort(np.unique(s))[::-1]
    for t in thresholds:
        if (s_ood >= t).mean() >= 0.95:
            assert m.fpr95 == pytest.approx((s_id >= t).mean())
            break


def test_refuses_empty_or_non_finite_scores() -> None:
    with pytest.raises(ValueError, match="both sides"):
        ood_metrics([], [1.0])
    with pytest.raises(ValueError, match="NaN"):
        ood_metrics([0.0, float("nan")], [1.0])
