"""Cross-modal alignment on synthetic modalities: a latent cloud seen through two frames."""

import pytest
import torch

from geolip.data.dataset import ImageDataset
from geolip.downstream.crossmodal import (
    ALIGN_METHODS,
    evaluate_retrieval,
    fit_alignment,
    random_rotation,
)
from geolip.downstream.crossmodal_study import (
    AlignSettings,
    load_alignment,
    run_align_study,
    save_align_study,
)
from geolip.downstream.experts import PrecomputedExpert
from geolip.downstream.result_files import load_result
from geolip.errors import CheckpointError, IncompatibleInputError

D = 6


def _modalities(n: int = 240, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(source, target, planted R): clustered latent z, target = z, source = z Rᵀ + noise."""
    gen = torch.Generator().manual_seed(seed)
    centres = 3 * torch.randn(10, D, generator=gen, dtype=torch.float64)
    z = centres[torch.randint(10, (n,), generator=gen)]
    z = z + 0.3 * torch.randn(n, D, generator=gen, dtype=torch.float64)
    rotation = random_rotation(D, seed + 7)
    source = z @ rotation.T + 1e-3 * torch.randn(n, D, generator=gen, dtype=torch.float64)
    return source, z, rotation


@pytest.mark.slow
@pytest.mark.parametrize("method", ["procrustes", "codebook", "whitened", "lstsq", "cca"])
def test_alignment_recovers_a_planted_rotation(method):
    x, y, _ = _modalities()
    fitted = fit_alignment(method, x[:180], y[:180], dim=D, seed=0, codebook_size=10)
    report = evaluate_retrieval(fitted, x[180:], y[180:], torch.arange(60))
    for direction in ("image→text", "text→image"):
        assert report[direction]["nn"].precision[1] >= 0.95, (method, direction)


@pytest.mark.parametrize("method", ["procrustes", "codebook"])
def test_the_rotation_between_pca_frames_is_the_planted_one(method):
    x, y, planted = _modalities()
    fitted = fit_alignment(method, x, y, dim=D, seed=0, codebook_size=10)
    # the source map is basis_s Rᵀ and the target's basis_t: their composition undoes R
    undo = fitted.source.projection @ fitted.target.projection.T
    assert torch.allclose(undo, planted, atol=0.02)


@pytest.mark.slow
def test_codebook_alignment_uses_no_pairs():
    x, y, _ = _modalities()
    shuffled = y[torch.randperm(y.shape[0], generator=torch.Generator().manual_seed(1))]
    paired = fit_alignment("codebook", x, y, dim=D, seed=0, codebook_size=10)
    unpaired = fit_alignment("codebook", x, shuffled, dim=D, seed=0, codebook_size=10)
    assert torch.allclose(paired.rotation, unpaired.rotation, atol=1e-8)
    assert paired.diagnostics["verdict"] == "aligned beyond chance"
    different_count = fit_alignment("codebook", x[:200], y, dim=D, seed=0, codebook_size=10)
    assert different_count.rotation.shape == (D, D)


def test_the_random_rotation_null_stays_near_chance():
    x, y, _ = _modalities()
    fitted = fit_alignment("random", x[:180], y[:180], dim=D, seed=0)
    report = evaluate_retrieval(fitted, x[180:], y[180:], torch.arange(60))
    assert report["image→text"]["nn"].precision[1] < 0.3


def test_mismatched_pair_counts_are_refused_before_any_work():
    x, y, _ = _modalities()
    for method in ("procrustes", "whitened", "lstsq", "cca"):
        with pytest.raises(IncompatibleInputError, match="mismatched pair counts"):
            fit_alignment(method, x[:100], y[:90], dim=D)


def test_dimension_mismatch_is_refused_with_the_limits():
    x, y, _ = _modalities()
    with pytest.raises(IncompatibleInputError, match=r"dimension mismatch"):
        fit_alignment("procrustes", x, y[:, :3], dim=4)
    fitted = fit_alignment("procrustes", x, y, dim=4)
    with pytest.raises(IncompatibleInputError, match=r"takes \(N, 6\)"):
        fitted.source.apply(torch.randn(5, 5))
    with pytest.raises(IncompatibleInputError, match="disagree in count"):
        evaluate_retrieval(fitted, x[:5], y[:4], torch.arange(5))
    with pytest.raises(IncompatibleInputError, match="unknown method"):
        fit_alignment("magic", x, y, dim=4)  # type: ignore[arg-type]


def _paired_dataset(n: int) -> ImageDataset:
    captions = [f"item {i % (n // 2)}" for i in range(n)]  # every caption twice
    return ImageDataset.from_tensors(
        "synthetic", torch.zeros(n, 1, 2, 2), torch.zeros(n, dtype=torch.long), ["x"], captions
    )


def test_a_study_over_seeds_saves_and_reads_back_its_maps(tmp_path):
    x, y, _ = _modalities(n=120)
    data = _paired_dataset(120)
    study = run_align_study(
        data,
        PrecomputedExpert("source", "image", x),
        PrecomputedExpert("target", "text", y),
        AlignSettings(methods=("procrustes", "random"), seeds=(0, 1), dim=D, null_trials=0),
    )
    summary = study.summary()
    p1 = summary["procrustes"]["image→text"]["nn"]["p@1"]
    assert len(p1["values"]) == 2 and p1["mean"] > 0.9
    assert summary["random"]["image→text"]["nn"]["p@1"]["mean"] < p1["mean"]
    save_align_study(study, tmp_path / "study", "synthetic")
    tensors, doc = load_result(tmp_path / "study", "align-modalities")
    assert tensors["procrustes.s0.rotation"].shape == (D, D)
    assert doc["lineage"]["operation"] == "align-modalities"
    assert doc["lineage"]["parents"]["dataset"]["fingerprint"] == data.fingerprint
    assert {r["seed"] for r in doc["runs"]} == {0, 1}
    back = load_alignment(tmp_path / "study", "procrustes", 1)
    original = next(r.fitted for r in study.runs if r.method == "procrustes" and r.seed == 1)
    assert torch.equal(back.source.projection, original.source.projection)
    assert torch.equal(back.rotation, original.rotation)
    with pytest.raises(CheckpointError, match="not 'soup'"):
        load_result(tmp_path / "study", "soup")
    with pytest.raises(IncompatibleInputError, match="no fit for cca"):
        load_alignment(tmp_path / "study", "cca", 0)


def test_a_study_refuses_swapped_modalities_and_missing_captions():
    x, y, _ = _modalities(n=40)
    data = _paired_dataset(40)
    image, text = PrecomputedExpert("i", "image", x), PrecomputedExpert("t", "text", y)
    with pytest.raises(IncompatibleInputError, match="align images to text"):
        run_align_study(data, text, image)
    bare = ImageDataset.from_tensors("bare", torch.zeros(40, 1, 2, 2), torch.zeros(40), ["x"])
    with pytest.raises(IncompatibleInputError, match="needs captions"):
        run_align_study(bare, image, text)


def test_methods_table_is_complete():
    assert set(ALIGN_METHODS) == {"codebook", "procrustes", "whitened", "lstsq", "cca", "random"}
