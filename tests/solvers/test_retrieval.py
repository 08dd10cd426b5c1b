import math

import pytest
import torch

from geolip.solvers.retrieval import (
    cosine_scores,
    csls_scores,
    relevance,
    retrieval_metrics,
)


def _direct_csls(q: torch.Tensor, g: torch.Tensor, k: int) -> torch.Tensor:
    """CSLS written out loop by loop from its definition (MUSE)."""
    q = [row / row.norm() for row in q.double()]
    g = [row / row.norm() for row in g.double()]
    out = torch.empty(len(q), len(g), dtype=torch.float64)
    for i, x in enumerate(q):
        r_x = sorted((float(x @ y) for y in g), reverse=True)[:k]
        for j, y in enumerate(g):
            r_y = sorted((float(y @ z) for z in q), reverse=True)[:k]
            out[i, j] = 2 * float(x @ y) - sum(r_x) / len(r_x) - sum(r_y) / len(r_y)
    return out


@pytest.mark.parametrize("k", [1, 3, 10])
def test_csls_matches_a_direct_implementation_on_fixed_inputs(k):
    gen = torch.Generator().manual_seed(3)
    q, g = torch.randn(7, 5, generator=gen), torch.randn(9, 5, generator=gen)
    assert torch.allclose(csls_scores(q, g, k), _direct_csls(q, g, k), atol=1e-12)


def test_csls_on_a_hand_computed_example():
    # queries e1, e2; gallery e1, (e1+e2)/√2; k = 1
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    g = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    c = 1 / math.sqrt(2)
    # r_G(q1) = 1, r_G(q2) = c; r_Q(g1) = 1, r_Q(g2) = c
    expected = torch.tensor([[2 - 1 - 1, 2 * c - 1 - c], [0 - c - 1, 2 * c - c - c]])
    assert torch.allclose(csls_scores(q, g, 1), expected.double(), atol=1e-12)


def test_csls_demotes_a_hub():
    # the gallery's first item is close to every query: NN picks it for all, CSLS does not
    q = torch.tensor([[1.0, 0.1, 0.0], [1.0, 0.0, 0.1], [1.0, -0.1, 0.0]])
    g = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.3, 0.0], [1.0, 0.0, 0.3], [1.0, -0.3, 0.0]])
    rel = relevance(torch.tensor([1, 2, 3]), torch.tensor([0, 1, 2, 3]))
    nn = retrieval_metrics(cosine_scores(q, g), rel)
    csls = retrieval_metrics(csls_scores(q, g, 2), rel)
    assert nn.precision[1] == 0.0 and nn.coverage == 0.25
    assert csls.precision[1] == 1.0 and csls.coverage == 0.75


def test_metrics_precision_rank_and_coverage():
    scores = torch.tensor([[0.9, 0.1, 0.5], [0.2, 0.8, 0.7], [0.9, 0.05, 0.1]])
    rel = relevance(torch.tensor([0, 2, 1]), torch.tensor([0, 1, 2]))
    m = retrieval_metrics(scores, rel, ks=(1, 2))
    assert m.precision == {1: pytest.approx(1 / 3), 2: pytest.approx(2 / 3)}
    assert m.coverage == pytest.approx(2 / 3)  # items 0 and 1 are someone's top-1
    assert m.median_rank == 2.0  # ranks 1, 2, 3
    assert m.chance[1] == pytest.approx(1 / 3)


def test_chance_matches_brute_force():
    from itertools import combinations

    rel = relevance(torch.tensor([0, 1]), torch.tensor([0, 0, 1, 2, 3]))
    m = retrieval_metrics(torch.zeros(2, 5), rel, ks=(2,))
    brute = []
    for row in rel:
        tops = list(combinations(range(5), 2))
        brute.append(sum(any(row[j] for j in t) for t in tops) / len(tops))
    assert m.chance[2] == pytest.approx(sum(brute) / 2)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="share D"):
        cosine_scores(torch.randn(3, 4), torch.randn(3, 5))
    with pytest.raises(ValueError, match="no relevant"):
        retrieval_metrics(torch.zeros(2, 2), torch.tensor([[True, False], [False, False]]))
    with pytest.raises(ValueError, match="one shape"):
        retrieval_metrics(torch.zeros(2, 3), torch.ones(2, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="k >= 1"):
        csls_scores(torch.randn(2, 2), torch.randn(2, 2), 0)
