"""The Procrustes soup on synthetic experts: one latent cloud seen through several frames."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import gaussian, gen, random_orthogonal

from geolip.data.dataset import ImageDataset
from geolip.downstream.experts import PrecomputedExpert
from geolip.downstream.result_files import load_result
from geolip.downstream.soup import STAGES, fit_soup, soup_embeddings
from geolip.downstream.soup_study import SoupSettings, run_soup_study, save_soup_study
from geolip.errors import IncompatibleInputError
from geolip.solvers.procrustes import generalized_procrustes, orthogonal_procrustes


def _experts(n: int = 120, widths=(10, 12, 9), seed: int = 0, noise: float = 0.05):
    """Experts = a shared 8-d latent, each embedded by its own random isometry into R^F_k,
    plus a common offset (so uncentred features share a mean direction) and noise."""
    g = gen(seed)
    z = gaussian(n, 8, g) * torch.linspace(3, 1, 8, dtype=torch.float64)
    out = []
    for f in widths:
        q = random_orthogonal(f, g, 1.0)[:8]  # (8, F): orthonormal rows
        offset = 4 * gaussian(1, f, g)
        out.append(z @ q + offset + noise * gaussian(n, f, g))
    return out


def _consensus_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """‖a R − b‖_F for the best orthogonal R: zero when equal up to a rotation."""
    r = orthogonal_procrustes(a, b)
    return torch.linalg.matrix_norm(a @ r.T - b).item()


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), order=st.permutations([0, 1, 2, 3]))
def test_gpa_converges_and_is_invariant_to_the_order_of_experts(seed, order):
    g = gen(seed)
    base = gaussian(30, 5, g)
    sets = [base @ random_orthogonal(5, g, 1.0).T + 0.05 * gaussian(30, 5, g) for _ in range(4)]
    first = generalized_procrustes(sets, scale=True, tol=1e-12, max_iter=2000)
    again = generalized_procrustes([sets[k] for k in order], scale=True, tol=1e-12, max_iter=2000)
    assert first.converged and again.converged
    assert _consensus_distance(first.consensus, again.consensus) < 1e-6
    # each expert lands on the consensus the same way in either order
    for new_k, k in enumerate(order):
        a = first.scales[k] * (sets[k] - first.translations[k]) @ first.rotations[k].T
        b = again.scales[new_k] * (sets[k] - again.translations[new_k]) @ again.rotations[new_k].T
        assert _consensus_distance(a, b) < 1e-6


@pytest.mark.slow
@settings(max_examples=5, deadline=None)
@given(order=st.permutations([0, 1, 2]))
def test_soup_statistics_do_not_depend_on_expert_order(order):
    from geolip.downstream.soup_study import agreement

    experts = _experts(n=180)
    train, test = [x[:120] for x in experts], [x[120:] for x in experts]
    fit = fit_soup(train, gpa_dim=8, dim=6)
    reordered = fit_soup([train[k] for k in order], gpa_dim=8, dim=6)
    units, consensus = soup_embeddings(fit, test)
    units_r, consensus_r = soup_embeddings(reordered, [test[k] for k in order])
    a, b = agreement(units), agreement(units_r)
    assert a["mean_cosine"] == pytest.approx(b["mean_cosine"], abs=1e-6)
    assert a["cross_p@1"] == pytest.approx(b["cross_p@1"], abs=1 / 60)  # a near-tie at most
    assert _consensus_distance(consensus, consensus_r) < 1e-3  # the same up to a rotation


@pytest.mark.slow
def test_calibrated_experts_agree_and_the_nulls_do_not():
    from geolip.downstream.soup_study import agreement, permuted_fit

    experts = _experts(n=200)
    train, test = [x[:150] for x in experts], [x[150:] for x in experts]
    fit = fit_soup(train, gpa_dim=8, dim=6)
    assert fit.gpa.converged
    calibrated = agreement(soup_embeddings(fit, test, "calibrated")[0])
    unaligned = agreement(soup_embeddings(fit, test, "centred")[0])
    permuted = agreement(soup_embeddings(permuted_fit(train, 8, 6, seed=0), test)[0])
    assert calibrated["mean_cosine"] > 0.95 and calibrated["cross_p@1"] > 0.9
    assert unaligned["cross_p@1"] < 0.2 and permuted["cross_p@1"] < 0.2


def test_every_stage_gives_unit_rows():
    experts = _experts()
    fit = fit_soup(experts, gpa_dim=8, dim=6)
    for stage in STAGES:
        units, consensus = soup_embeddings(fit, experts, stage)
        assert len(units) == 3 and consensus.shape == (120, 6)
        assert torch.allclose(consensus.norm(dim=1), torch.ones(120, dtype=torch.float64))


def test_bad_experts_are_refused_before_any_work():
    experts = _experts()
    with pytest.raises(IncompatibleInputError, match="at least 2 experts"):
        fit_soup(experts[:1], gpa_dim=8, dim=6)
    with pytest.raises(IncompatibleInputError, match="mismatched pair counts"):
        fit_soup([experts[0], experts[1][:100]], gpa_dim=8, dim=6)
    with pytest.raises(IncompatibleInputError, match="dimension mismatch"):
        fit_soup(experts, gpa_dim=10, dim=6)  # the third expert has width 9
    fit = fit_soup(experts, gpa_dim=8, dim=6)
    with pytest.raises(IncompatibleInputError, match="fitted on width 12"):
        soup_embeddings(fit, [experts[0], experts[0], experts[2]])


def test_soup_study_reports_every_stage_and_reads_back(tmp_path):
    experts = _experts(n=80)
    data = ImageDataset.from_tensors(
        "synthetic", torch.zeros(80, 1, 2, 2), torch.zeros(80, dtype=torch.long), ["x"]
    )
    made = [PrecomputedExpert(f"e{k}", "image", x) for k, x in enumerate(experts)]
    study = run_soup_study(
        data, made, SoupSettings(seeds=(0, 1), gpa_dim=8, dim=6, anchors=8, null_trials=3)
    )
    summary = study.summary()
    assert set(summary) == {*STAGES, "permuted"}
    assert summary["calibrated"]["cross_p@1"]["mean"] > summary["centred"]["cross_p@1"]["mean"]
    assert summary["raw"]["anchors_active"]["mean"] <= 8
    save_soup_study(study, tmp_path / "soup", "synthetic")
    tensors, doc = load_result(tmp_path / "soup", "soup")
    assert doc["lineage"]["operation"] == "soup" and len(doc["runs"]) == 2
    assert tensors["s1.gpa.rotations"].shape == (3, 8, 8)
