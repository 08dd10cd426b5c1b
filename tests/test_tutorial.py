"""docs/tutorial.md runs as written: every ```bash block in order, in one empty folder, with the
venv's ``geolip`` on PATH, and after each block a check of what it printed or wrote.

Each block is preceded by ``<!-- check: NAME -->`` naming its check in ``CHECKS``; a block that
is meant to fail says ``# expect exit N`` and must exit with N. Checks read ``--json`` output
(the block's own, or a ``--json`` re-run of a cheap command) and the artifacts, never the text
tables, and test what the tutorial tells the reader to read off them. HOME and every cache are
already under temporary folders (``tests/conftest.py``). Each block's stdout and stderr are kept
in ``outputs/`` of the test's folder, for updating the excerpts in the tutorial.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch

from geolip import Codebook
from geolip.downstream.classify import load_head
from geolip.solvers.intervals import difference_interval, within

ROOT = Path(__file__).parent.parent
TUTORIAL = ROOT / "docs" / "tutorial.md"
BLOCK = re.compile(r"<!-- check: ([\w-]+) -->\n```bash\n(.*?)```", re.S)
EXPECT = re.compile(r"^# expect exit (\d+)$", re.M)
BIN = Path(sys.executable).parent
SQRT2 = math.sqrt(2.0)
CONTROLS = {"untrained", "other_calibration", "constant_input", "shuffled_calibration"}


@dataclass
class Run:
    """One block's result, the folder it ran in, and what earlier checks recorded."""

    stdout: str
    stderr: str
    cwd: Path
    env: dict[str, str]
    state: dict[str, Any] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.stdout)

    def geolip_json(self, *args: str) -> Any:
        """A ``--json`` variant of a (cheap) command, run like the blocks."""
        done = subprocess.run(
            [str(BIN / "geolip"), *args, "--json"],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"geolip {' '.join(args)} --json:\n{done.stderr}"
        return json.loads(done.stdout)


def blocks() -> list[tuple[str, str]]:
    text = TUTORIAL.read_text()
    found = BLOCK.findall(text)
    assert len(found) == text.count("```bash\n"), "every bash block needs a <!-- check: --> line"
    return found


def _check_extracted(doc: dict, *, n: int, trials: int, calibration: str, rows: int) -> dict:
    """The numbers the tutorial explains for an extracted codebook, and how they relate."""
    q, null, ext = doc["quality"], doc["quality"]["null"], doc["extraction"]
    assert doc["dim"] == 4 and len(doc["id"]) == 64
    assert (ext["n"], ext["calibration"], ext["n_rows"]) == (n, calibration, rows)
    assert doc["size"] == ext["n_rows"] - ext["n_pairs"]  # each pair became one axis
    assert 0 < q["mean_projective_angle"] < math.pi / 2
    assert math.isclose(q["deviation"], q["mean_projective_angle"] - q["uniform_baseline"])
    assert q["clean"] == (abs(q["deviation"]) < 0.05)
    assert (q["statute"] == "uniform") == q["clean"]
    assert math.isclose(q["pair_fraction"], ext["n_pairs"] / doc["size"])
    assert math.isclose(q["pair_fraction_rows"], 2 * ext["n_pairs"] / ext["n_rows"])
    assert null["kind"] == "rows" and null["n_trials"] == trials
    assert null["deviation_p5"] < null["deviation_mean"] < null["deviation_p95"]
    assert null["deviation_sd"] > 0 and null["pairs_mean"] > 0
    assert 0 <= null["percentile"] <= 100 and 0 <= null["pairs_percentile"] <= 100
    if null["deviation_p5"] < q["deviation"] < null["deviation_p95"]:
        assert 3 <= null["percentile"] <= 97
    if q["deviation"] > null["deviation_p95"]:
        assert null["percentile"] >= 93
    assert 0 <= q["effective_rank_percentile"] <= 100
    assert 1 <= q["effective_rank"] <= doc["dim"] + 1e-9
    for control in q["controls"]:
        assert 0 <= control["distance_to_observed"] <= SQRT2
        assert 0 <= control["null_percentile"] <= 100
        assert math.isfinite(control["distance_z"])
    return doc


def _inside_null(doc: dict) -> None:
    """The tutorial's reading of the shipped producers: inside the null on both statistics."""
    assert doc["quality"]["statute"] == "uniform"
    assert 5 <= doc["quality"]["null"]["percentile"] <= 95
    assert 5 <= doc["quality"]["null"]["pairs_percentile"] <= 95


def _controls(doc: dict) -> dict[str, dict]:
    return {c["name"]: c for c in doc["quality"]["controls"]}


def check_quickstart(r: Run) -> None:
    out = r.cwd / "geolip-quickstart"
    assert (out / "codebook" / "codebook.safetensors").is_file()
    assert (out / "codebook-angles.png").read_bytes().startswith(b"\x89PNG")
    assert (out / "checkpoints" / "best" / "config.json").is_file()


def check_quickstart_json(r: Run) -> None:
    doc = _check_extracted(r.json(), n=64, trials=300, calibration="sixteen_noise", rows=32)
    assert doc["quality_source"] == "stored"
    assert doc["lineage"]["operation"] == "extract" and doc["producer"]["name"] == "h2"
    controls = _controls(doc)
    assert set(controls) == CONTROLS
    # the reading in the tutorial: shuffled pixels give the same codebook, the untrained
    # network one as far away as a random codebook
    assert controls["shuffled_calibration"]["distance_z"] < -3
    assert controls["untrained"]["distance_z"] > -3


def check_extract_h2(r: Run) -> None:
    doc = _check_extracted(
        r.geolip_json("codebook", "info", "cb-h2"),
        n=32,
        trials=100,
        calibration="gaussian",
        rows=32,
    )
    _inside_null(doc)
    assert set(_controls(doc)) == CONTROLS - {"shuffled_calibration"}
    assert [s["name"] for s in doc["quality"]["controls_skipped"]] == ["shuffled_calibration"]
    r.state["h2"] = doc


def check_extract_freckles(r: Run) -> None:
    doc = r.json()
    _check_extracted(doc, n=32, trials=100, calibration="sixteen_noise", rows=48)
    _inside_null(doc)
    assert set(_controls(doc)) == CONTROLS
    assert Codebook.load(r.cwd / "cb-freckles").id == doc["id"]
    r.state["freckles"] = doc


def check_refuse_overwrite(r: Run) -> None:
    kept = Codebook.load(r.cwd / "cb-h2")
    assert kept.id == r.state["h2"]["id"] and kept.meta.extraction.n == 32


def check_features(r: Run) -> None:
    cache = Path(r.env["GEOLIP_CACHE_DIR"]) / "features"
    assert len(list(cache.glob("*.safetensors"))) == 1


def check_features_json(r: Run) -> None:
    doc, k = r.json(), r.state["h2"]["size"]
    assert doc["from_cache"] is True
    assert (doc["n"], doc["size"]) == (300, [64, 64])
    assert doc["shapes"] == {"mean": [300, 32, k], "hist": [300, k]}
    assert doc["codebook_id"] == r.state["h2"]["id"]
    assert Path(doc["path"]).is_file()


def _check_accuracy(result: dict) -> None:
    acc, (lo, hi), chance = result["accuracy"], result["ci95"], result["chance"]
    assert math.isclose(acc, result["correct"] / result["n"])
    assert 0 <= lo <= acc <= hi <= 1
    assert 0 < chance < 0.5
    verdict = "holds" if lo >= chance else "fails" if hi < chance else "inconclusive"
    assert result["above_chance"] == verdict


def check_classify_train(r: Run) -> None:
    head = load_head(r.cwd / "shapes-head.safetensors")
    assert head.info.codebook_id == r.state["h2"]["id"]
    assert head.info.n_classes == 6 and head.info.n_train == 300
    assert head.info.feature == "mean" and head.info.feature_shape == (32, r.state["h2"]["size"])


def check_classify_eval(r: Run) -> None:
    results = r.json()["results"]
    assert [x["size"] for x in results] == [[64, 64], [128, 128]]
    for result in results:
        assert result["n"] == 150
        _check_accuracy(result)
    at64, at128 = results
    assert at64["above_chance"] == "holds"
    assert at128["accuracy"] < at64["accuracy"]  # the tutorial's reading: it drops, but
    change = difference_interval(at64["correct"], at64["n"], at128["correct"], at128["n"])
    assert within(change, 0.02) == "inconclusive"  # 150 images cannot decide "within 2 pp"


def _check_batch(batch: dict) -> None:
    assert 0 <= batch["distance"] <= SQRT2
    assert batch["z_score"] < -3  # every real input beats random codebooks
    assert (batch["n_images"], batch["id_batches"], batch["id_batch_images"]) == (16, 19, 16)
    assert 0 <= batch["id_percentile"] <= 100
    assert 1 / 20 - 1e-12 <= batch["id_p_value"] <= 1


def check_ood_score_id(r: Run) -> None:
    batch = r.geolip_json(
        "ood",
        "score",
        "pretrained:h2-gaussian",
        "--codebook",
        "cb-h2",
        "--dataset",
        "noise:kind=gaussian,n=16,seed=5",
        "--id-dataset",
        "noise:kind=gaussian,n=304,seed=6",
    )["batch"]
    _check_batch(batch)
    assert batch["id_percentile"] < 95 and batch["id_p_value"] > 0.05  # no false alarm


def check_ood_score_ood(r: Run) -> None:
    doc = r.json()
    batch = doc["batch"]
    _check_batch(batch)
    assert batch["id_percentile"] == 100 and math.isclose(batch["id_p_value"], 0.05)
    assert batch["distance"] > batch["id_batch_mean"] + 2 * batch["id_batch_sd"]
    assert 0 <= doc["per_image"]["p5"] <= doc["per_image"]["median"] <= doc["per_image"]["p95"]


def check_ood_eval(r: Run) -> None:
    doc = r.geolip_json(
        "ood",
        "eval",
        "pretrained:h2-gaussian",
        "--codebook",
        "cb-h2",
        "--id",
        "noise:kind=gaussian,n=64,seed=6",
        "--ood",
        "shapes:n=32,size=64",
        "--ood",
        "noise:kind=gaussian,n=32,seed=7",
    )
    assert (doc["n_fit"], doc["n_test"]) == (32, 32)
    assert set(doc["methods"]) == {"validity", "mse_ratio", "mahalanobis", "knn"}
    shapes = doc["results"]["shapes:n=32,size=64"]
    same = doc["results"]["noise:kind=gaussian,n=32,seed=7"]
    for table in (shapes, same):
        assert set(table) == set(doc["methods"])
        for m in table.values():
            assert (m["n_id"], m["n_ood"]) == (32, 32)
            assert all(0 <= m[k] <= 1 for k in ("auroc", "fpr95", "aupr_in", "aupr_out"))
    assert shapes["validity"]["auroc"] > 0.8
    assert all(shapes[m]["auroc"] > 0.9 for m in ("mse_ratio", "mahalanobis", "knn"))
    # the negative control: the in-distribution family again; about 3.5 standard errors
    assert all(abs(m["auroc"] - 0.5) < 0.25 for m in same.values())


def check_extract_freckles_gaussian(r: Run) -> None:
    cb = Codebook.load(r.cwd / "cb-freckles-gaussian")
    ext = cb.meta.extraction
    assert ext.calibration == "gaussian" and cb.size == ext.n_rows - ext.n_pairs


def _check_alignment(doc: dict, reference: str, k: int, k2: int) -> None:
    assert doc["reference"] == reference and doc["matched"] == min(k, k2)
    assert 0 <= doc["inliers"] <= doc["matched"]
    assert len(doc["matching"]) == len(doc["signs"]) == len(doc["residual_deg"]) == doc["matched"]
    assert set(doc["signs"]) <= {1, -1}
    residuals = doc["residual_deg"]
    assert math.isclose(doc["mean_residual_deg"], sum(residuals) / len(residuals), rel_tol=1e-6)
    assert math.isclose(doc["max_residual_deg"], max(residuals), rel_tol=1e-6)
    assert 0 <= doc["rms_chordal"] <= SQRT2
    rotation = torch.tensor(doc["rotation"], dtype=torch.float64)
    assert torch.allclose(rotation @ rotation.T, torch.eye(4, dtype=torch.float64), atol=1e-8)
    assert doc["det"] in (1, -1)
    chance = doc["z_score"] <= doc["verdict_threshold_z"]
    assert doc["verdict"] == (
        "aligned beyond chance" if chance else "indistinguishable from random"
    )


def check_align_control(r: Run) -> None:
    doc = r.geolip_json("codebook", "align", "cb-freckles", "cb-freckles-gaussian")
    k = r.state["freckles"]["size"]
    _check_alignment(
        doc, r.state["freckles"]["id"], k, Codebook.load(r.cwd / "cb-freckles-gaussian").size
    )
    assert doc["verdict"] == "aligned beyond chance" and doc["inliers"] == doc["matched"]
    assert doc["rms_chordal"] < 0.05


def check_align(r: Run) -> None:
    doc = r.geolip_json("codebook", "align", "cb-freckles", "cb-h2")
    fr, h2 = r.state["freckles"], r.state["h2"]
    _check_alignment(doc, fr["id"], fr["size"], h2["size"])
    assert doc["moving"] == h2["id"]
    assert doc["verdict"] == "indistinguishable from random"


def check_diff(r: Run) -> None:
    doc = r.geolip_json("codebook", "diff", "cb-h2", "cb-freckles")
    k = r.state["h2"]["size"]
    assert doc["count"] == len(doc["indices"]) == len(doc["angles_deg"]) <= k
    assert doc["indices"] == sorted(set(doc["indices"])) and set(doc["indices"]) <= set(range(k))
    assert all(a > doc["tol_deg"] for a in doc["angles_deg"])
    assert 0 < doc["count_null"]["mean"] <= k and doc["count_null"]["n_trials"] == 8


def check_merge(r: Run) -> None:
    merged = Codebook.load(r.cwd / "cb-merged")
    freckles = Codebook.load(r.cwd / "cb-freckles")
    lineage = merged.meta.lineage
    assert lineage.operation == "merge"
    assert lineage.parents == [r.state["freckles"]["id"], r.state["h2"]["id"]]
    added = lineage.parameters["added"]
    assert 0 < added <= r.state["h2"]["size"] and merged.size == freckles.size + added
    assert torch.equal(merged.axes[: freckles.size], freckles.axes)  # indices kept, bit for bit
    r.state["added"] = added


def check_diff_merged(r: Run) -> None:
    doc, k = r.json(), r.state["freckles"]["size"]
    assert doc["indices"] == list(range(k, k + r.state["added"]))  # exactly the appended axes
    assert doc["count_null"]["mean"] > doc["count"]


CHECKS: dict[str, Callable[[Run], None]] = {
    "quickstart": check_quickstart,
    "quickstart-json": check_quickstart_json,
    "extract-h2": check_extract_h2,
    "extract-freckles": check_extract_freckles,
    "refuse-overwrite": check_refuse_overwrite,
    "features": check_features,
    "features-json": check_features_json,
    "classify-train": check_classify_train,
    "classify-eval": check_classify_eval,
    "ood-score-id": check_ood_score_id,
    "ood-score-ood": check_ood_score_ood,
    "ood-eval": check_ood_eval,
    "extract-freckles-gaussian": check_extract_freckles_gaussian,
    "align-control": check_align_control,
    "align": check_align,
    "diff": check_diff,
    "merge": check_merge,
    "diff-merged": check_diff_merged,
}


def test_every_block_has_a_check() -> None:
    names = [name for name, _ in blocks()]
    assert sorted(names) == sorted(CHECKS), "checks and tutorial blocks out of step"


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_tutorial_runs_as_written(tmp_path: Path) -> None:
    assert (BIN / "geolip").is_file(), f"no geolip console script beside {sys.executable}"
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    work, outputs = tmp_path / "work", tmp_path / "outputs"
    work.mkdir()
    outputs.mkdir()
    state: dict[str, Any] = {}
    for i, (name, code) in enumerate(blocks()):
        expect = EXPECT.search(code)
        start = time.perf_counter()
        done = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", code],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        seconds = time.perf_counter() - start
        (outputs / f"{i:02d}-{name}.stdout").write_text(done.stdout)
        (outputs / f"{i:02d}-{name}.stderr").write_text(f"{done.stderr}\n[{seconds:.1f} s]\n")
        wanted = int(expect.group(1)) if expect else 0
        assert done.returncode == wanted, (
            f"block {name!r} exited {done.returncode}, expected {wanted}:\n{code}\n"
            f"stderr:\n{done.stderr[-3000:]}"
        )
        CHECKS[name](Run(done.stdout, done.stderr, work, env, state))
