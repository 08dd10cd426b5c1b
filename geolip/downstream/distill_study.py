"""The §5a study: a distilled sphere-solver against its teacher, probed at two resolutions.

For each seed: a held-out split; the teacher's features of the train images at the training
resolution; two students from the same initial producer, one distilled (reconstruction +
feature matching) and one fine-tuned by reconstruction alone (the control); then at every
evaluation size a linear probe (class labels) on the features of the student, the control,
the untouched initial producer and the teacher, each fitted on the train split and scored on
the held-out split at that size. Images at another size are the same scenes rendered there
(the dataset is reopened by its spec with that ``size``), not a resampling.

OMEGA §5a predicts that the student at the larger size matches or exceeds the teacher there.
"""

from __future__ import annotations

import copy
import statistics
from collections.abc import Callable
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from geolip._progress import progress_bar
from geolip.data.captions import held_out_split
from geolip.data.dataset import ImageDataset
from geolip.downstream.distill import DistillConfig, distill, probe_accuracy, student_features
from geolip.downstream.experts import Expert
from geolip.downstream.result_files import lineage, spread

DISTILL_KIND = "distill"
SUBJECTS = ("student", "control", "initial", "teacher")
"""What each probe row compares, in order."""


class DistillSettings(BaseModel):
    """Settings of :func:`run_distill_study`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seeds: tuple[int, ...] = (0, 1, 2)
    train_size: int = Field(32, ge=2)
    eval_sizes: tuple[int, ...] = (32, 64)
    test_fraction: float = Field(0.25, gt=0, lt=1)
    distill: DistillConfig = DistillConfig()

    @field_validator("seeds", "eval_sizes")
    @classmethod
    def _distinct(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or len(set(value)) != len(value):
            raise ValueError(f"needs distinct entries, got {list(value)}")
        return value


def run_distill_study(
    open_at: Callable[[int], ImageDataset],
    initial: torch.nn.Module,
    teacher: Expert,
    settings: DistillSettings | None = None,
    *,
    progress: bool = False,
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The study (module docstring): (document, tensors). ``open_at(size)`` gives the dataset
    rendered at ``size``, the same items in the same order at every size; ``initial`` is
    copied, never changed. The tensors are every seed's distilled student and head
    (``sSEED.student.*``, ``sSEED.head.*``)."""
    cfg = settings or DistillSettings()
    at = {s: open_at(s) for s in sorted({cfg.train_size, *cfg.eval_sizes})}
    base = at[cfg.train_size]
    labels = base.labels
    runs, tensors = [], {}
    total = len(cfg.seeds) * 2 * cfg.distill.steps
    with progress_bar(progress) as bar:
        task = bar.add_task("distillation", total=total)

        def tick(_step: int) -> None:
            bar.update(task, advance=1)

        for seed in cfg.seeds:
            train, test = held_out_split(len(base), cfg.test_fraction, seed)
            teacher_at = {s: teacher.features(d, train, seed) for s, d in at.items()}
            images = base.subset(train).images
            models = {"initial": copy.deepcopy(initial).eval()}
            losses = {}
            for name, weight in (("student", cfg.distill.match_weight), ("control", 0.0)):
                config = cfg.distill.model_copy(update={"match_weight": weight, "seed": seed})
                targets = teacher_at[cfg.train_size][train]
                trained = distill(copy.deepcopy(initial), images, targets, config, progress=tick)
                models[name] = trained.student
                last = trained.losses[-20:]
                losses[name] = {
                    "recon_mse": statistics.fmean(r for r, _ in last),
                    "one_minus_cos": statistics.fmean(m for _, m in last),
                }
                if name == "student":
                    for k, v in trained.student.state_dict().items():
                        tensors[f"s{seed}.student.{k}"] = v
                    for k, v in trained.head.state_dict().items():
                        tensors[f"s{seed}.head.{k}"] = v
            probes: dict[str, dict[str, float]] = {}
            for size in cfg.eval_sizes:
                feats = {n: student_features(m, at[size]) for n, m in models.items()}
                feats["teacher"] = teacher_at[size]
                probes[str(size)] = {
                    n: probe_accuracy(f[train], labels[train], f[test], labels[test])
                    for n, f in feats.items()
                }
            runs.append({"seed": seed, "probe_accuracy": probes, "final_losses": losses})
    document = {
        "settings": cfg.model_dump(mode="json"),
        "runs": runs,
        "summary": _summary(runs),
        "teacher": teacher.describe(),
        "dataset": {"name": base.name, "n": len(base), "fingerprint": base.fingerprint},
    }
    return document, tensors


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """size → subject → {mean, std, values} of the probe accuracy over seeds."""
    out: dict[str, Any] = {}
    for run in runs:
        for size, by_subject in run["probe_accuracy"].items():
            for subject, acc in by_subject.items():
                out.setdefault(size, {}).setdefault(subject, {"values": []})["values"].append(acc)
    for by_subject in out.values():
        for node in by_subject.values():
            node.update(spread(node["values"]))
    return out


def distill_document(study: dict[str, Any], spec: str | None, initial: str) -> dict[str, Any]:
    parents = {
        "dataset": {**study["dataset"], "spec": spec},
        "teacher": study["teacher"],
        "initial_student": initial,
    }
    return {**study, "lineage": lineage(DISTILL_KIND, parents)}
