"""The cross-modal retrieval study: every method, every seed, one held-out split per seed.

For each seed s: a held-out split of the paired dataset (seeded by s), the experts' features
(seeded experts such as the small CNN are refitted on that split's train part), every
alignment method of :mod:`geolip.downstream.crossmodal` fitted on the train pairs and
evaluated on the held-out pairs, image → text and text → image, by nearest neighbour and by
CSLS. The summary gives, per method, direction, scoring and metric, the mean, the sample
standard deviation over seeds and the values themselves. Fitted maps are kept and saved.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from geolip._progress import progress_bar
from geolip.data.captions import Relevance, held_out_split, relevance_groups
from geolip.data.dataset import ImageDataset
from geolip.downstream.crossmodal import (
    ALIGN_METHODS,
    AlignMethod,
    FittedAlignment,
    SideMap,
    evaluate_retrieval,
    fit_alignment,
)
from geolip.downstream.experts import Expert
from geolip.downstream.result_files import lineage, load_result, save_result, spread
from geolip.errors import IncompatibleInputError

ALIGN_KIND = "align-modalities"


class AlignSettings(BaseModel):
    """Settings of :func:`run_align_study`; the defaults suit ~1,000 pairs on a CPU."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    methods: tuple[AlignMethod, ...] = ALIGN_METHODS
    seeds: tuple[int, ...] = (0, 1, 2)
    dim: int = Field(32, ge=1)
    test_fraction: float = Field(0.25, gt=0, lt=1)
    csls_k: int = Field(10, ge=1)
    codebook_size: int = Field(32, ge=1)
    null_trials: int = Field(16, ge=0)
    relevance: Relevance = "caption"

    @field_validator("methods", "seeds")
    @classmethod
    def _non_empty(cls, value: tuple) -> tuple:
        if not value:
            raise ValueError("needs at least one entry")
        if len(set(value)) != len(value):
            raise ValueError(f"has repeated entries: {list(value)}")
        return value

    @field_validator("null_trials")
    @classmethod
    def _null(cls, value: int) -> int:
        if value == 1:
            raise ValueError("0 (no null), or >= 2")
        return value


@dataclass(frozen=True)
class AlignRun:
    """One (seed, method): its fitted maps and its held-out retrieval metrics."""

    seed: int
    method: str
    fitted: FittedAlignment
    metrics: dict[str, dict[str, dict[str, float | int]]]


@dataclass(frozen=True)
class AlignStudy:
    settings: AlignSettings
    runs: list[AlignRun]
    experts: dict[str, dict[str, Any]]
    dataset: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        """method → direction → scoring → metric → {mean, std, values} over seeds."""
        out: dict[str, Any] = {}
        for run in self.runs:
            for direction, by_scoring in run.metrics.items():
                for scoring, metrics in by_scoring.items():
                    node = out.setdefault(run.method, {}).setdefault(direction, {})
                    node = node.setdefault(scoring, {})
                    for name, value in metrics.items():
                        node.setdefault(name, {"values": []})["values"].append(value)
        for node in _leaves(out):
            node.update(spread(node["values"]))
        return out


def _leaves(tree: dict[str, Any]) -> list[dict[str, Any]]:
    if "values" in tree:
        return [tree]
    return [leaf for sub in tree.values() for leaf in _leaves(sub)]


def expert_features(
    experts: list[Expert], dataset: ImageDataset, seeds: tuple[int, ...], test_fraction: float
) -> dict[tuple[str, int], torch.Tensor]:
    """(expert name, seed) → (N, F) features; unseeded experts are computed once."""
    out: dict[tuple[str, int], torch.Tensor] = {}
    for expert in experts:
        once: torch.Tensor | None = None
        for seed in seeds:
            train, _ = held_out_split(len(dataset), test_fraction, seed)
            if expert.seeded:
                out[expert.name, seed] = expert.features(dataset, train, seed)
            else:
                once = expert.features(dataset, train, seed) if once is None else once
                out[expert.name, seed] = once
    return out


def run_align_study(
    dataset: ImageDataset,
    image_expert: Expert,
    text_expert: Expert,
    settings: AlignSettings | None = None,
    *,
    progress: bool = False,
) -> AlignStudy:
    """Fit and evaluate every method of ``settings`` on every seed (module docstring)."""
    cfg = settings or AlignSettings()
    if image_expert.modality != "image" or text_expert.modality != "text":
        raise IncompatibleInputError(
            f"align images to text: got a {image_expert.modality} expert "
            f"{image_expert.name!r} and a {text_expert.modality} expert {text_expert.name!r}"
        )
    if dataset.captions is None:
        raise IncompatibleInputError(f"{dataset.name}: cross-modal alignment needs captions")
    groups = relevance_groups(dataset, cfg.relevance)
    n_train = len(dataset) - round(cfg.test_fraction * len(dataset))
    if not 1 <= cfg.dim <= n_train - 1:
        raise IncompatibleInputError(f"dim {cfg.dim} needs at least {cfg.dim + 1} train pairs")
    held_out_split(len(dataset), cfg.test_fraction, cfg.seeds[0])  # refuses a bad split now
    feats = expert_features([image_expert, text_expert], dataset, cfg.seeds, cfg.test_fraction)
    runs = []
    with progress_bar(progress) as bar:
        task = bar.add_task("alignment", total=len(cfg.seeds) * len(cfg.methods))
        for seed in cfg.seeds:
            train, test = held_out_split(len(dataset), cfg.test_fraction, seed)
            x, y = feats[image_expert.name, seed], feats[text_expert.name, seed]
            for method in cfg.methods:
                fitted = fit_alignment(
                    method,
                    x[train],
                    y[train],
                    dim=cfg.dim,
                    seed=seed,
                    codebook_size=cfg.codebook_size,
                    null_trials=cfg.null_trials,
                )
                report = evaluate_retrieval(
                    fitted, x[test], y[test], groups[test], csls_k=cfg.csls_k
                )
                metrics = {d: {s: m.as_dict() for s, m in r.items()} for d, r in report.items()}
                runs.append(AlignRun(seed, method, fitted, metrics))
                bar.update(task, advance=1)
    return AlignStudy(
        settings=cfg,
        runs=runs,
        experts={"image": image_expert.describe(), "text": text_expert.describe()},
        dataset={
            "name": dataset.name,
            "n": len(dataset),
            "size": list(dataset.size),
            "fingerprint": dataset.fingerprint,
            "n_distinct_captions": len(set(dataset.captions)),
        },
    )


def study_document(study: AlignStudy, spec: str | None = None) -> dict[str, Any]:
    """The JSON document of a study: settings, summary, every run, lineage."""
    parents = {"dataset": {**study.dataset, "spec": spec}, "experts": study.experts}
    return {
        "settings": study.settings.model_dump(mode="json"),
        "summary": study.summary(),
        "runs": [
            {
                "seed": r.seed,
                "method": r.method,
                "metrics": r.metrics,
                "diagnostics": r.fitted.diagnostics,
            }
            for r in study.runs
        ],
        "lineage": lineage(ALIGN_KIND, parents),
    }


def save_align_study(study: AlignStudy, folder: str | Path, spec: str | None = None) -> Path:
    """Write the fitted maps (``METHOD.sSEED.source.projection``, ...) and the document."""
    tensors: dict[str, torch.Tensor] = {}
    for r in study.runs:
        prefix = f"{r.method}.s{r.seed}"
        tensors.update(r.fitted.source.tensors(f"{prefix}.source"))
        tensors.update(r.fitted.target.tensors(f"{prefix}.target"))
        if r.fitted.rotation is not None:
            tensors[f"{prefix}.rotation"] = r.fitted.rotation
    return save_result(folder, ALIGN_KIND, tensors, study_document(study, spec))


def load_alignment(folder: str | Path, method: str, seed: int) -> FittedAlignment:
    """The fitted maps of one (method, seed) of a saved study, read back verified."""
    tensors, doc = load_result(folder, ALIGN_KIND)
    prefix = f"{method}.s{seed}"
    if f"{prefix}.source.projection" not in tensors:
        have = sorted({k.rsplit(".", 3)[0] for k in tensors})
        raise IncompatibleInputError(f"{folder}: no fit for {method} seed {seed}; has {have}")
    diagnostics = next(
        (r["diagnostics"] for r in doc["runs"] if r["method"] == method and r["seed"] == seed), {}
    )
    return FittedAlignment(
        method,
        SideMap.from_tensors(tensors, f"{prefix}.source"),
        SideMap.from_tensors(tensors, f"{prefix}.target"),
        tensors.get(f"{prefix}.rotation"),
        diagnostics,
    )
