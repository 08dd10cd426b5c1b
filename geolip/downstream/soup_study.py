"""The soup study: agreement of aligned experts and anchor utilisation, beside their nulls.

For each seed: a held-out split, every expert's features, the soup fitted on the train rows
(:func:`geolip.downstream.soup.fit_soup`) and judged on the held-out rows at every stage
(``raw``, ``centred``, ``gpa``, ``calibrated``):

- agreement: for every pair of experts, the mean cosine between their embeddings of the same
  item, and cross-expert retrieval P@1 (expert k's row of item i finds expert l's row of i
  among the held-out items; chance 1/N). ``centred`` is the null of unaligned experts; a
  second null, ``permuted``, fits the whole soup after shuffling each expert's training rows
  independently, so that GPA and calibration fit noise with the pairing broken;
- anchors: a repulsion constellation of A anchors (spec §C.5) in the consensus space and how
  many of them the held-out consensus rows use, beside i.i.d. uniform rows on the sphere;
- consensus CV: the pentachoron CV of the held-out consensus rows beside i.i.d. uniform rows.
"""

from __future__ import annotations

import itertools
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from geolip._progress import progress_bar
from geolip.data.captions import held_out_split
from geolip.data.dataset import ImageDataset
from geolip.downstream.crossmodal_study import expert_features
from geolip.downstream.experts import Expert
from geolip.downstream.result_files import lineage, save_result, spread
from geolip.downstream.soup import STAGES, SoupFit, check_experts, fit_soup, soup_embeddings
from geolip.solvers.constellation import anchor_utilisation, repulsion_anchors
from geolip.solvers.metrics import cv_uniform, pentachoron_cv
from geolip.solvers.retrieval import cosine_scores, relevance, retrieval_metrics

SOUP_KIND = "soup"
NULL_STAGES = ("permuted",)


class SoupSettings(BaseModel):
    """Settings of :func:`run_soup_study`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seeds: tuple[int, ...] = (0, 1, 2)
    gpa_dim: int = Field(48, ge=1)
    dim: int = Field(32, ge=4)
    anchors: int = Field(64, ge=1)
    test_fraction: float = Field(0.25, gt=0, lt=1)
    null_trials: int = Field(20, ge=0)

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or len(set(value)) != len(value):
            raise ValueError(f"needs distinct seeds, got {list(value)}")
        return value


def agreement(units: list[torch.Tensor]) -> dict[str, float]:
    """Mean over expert pairs of the same-item cosine and of cross-expert P@1 (index
    relevance), for (N, d) unit rows of the same N items."""
    n = units[0].shape[0]
    same = relevance(torch.arange(n), torch.arange(n))
    cosines, hits = [], []
    for a, b in itertools.combinations(units, 2):
        cosines.append((a * b).sum(dim=1).mean().item())
        for q, g in ((a, b), (b, a)):
            hits.append(retrieval_metrics(cosine_scores(q, g), same, (1,)).precision[1])
    return {
        "mean_cosine": statistics.fmean(cosines),
        "cross_p@1": statistics.fmean(hits),
        "chance_p@1": 1.0 / n,
    }


def permuted_fit(train: list[torch.Tensor], gpa_dim: int, dim: int, seed: int) -> SoupFit:
    """The soup fitted after shuffling each expert's rows independently (pairing broken)."""
    gen = torch.Generator().manual_seed(seed)
    shuffled = [x[torch.randperm(x.shape[0], generator=gen)] for x in train]
    return fit_soup(shuffled, gpa_dim=gpa_dim, dim=dim)


def stage_report(
    fit: SoupFit,
    test: list[torch.Tensor],
    stage: str,
    anchors: torch.Tensor,
    settings: Any,
    seed: int,
) -> dict[str, Any]:
    units, consensus = soup_embeddings(fit, test, "calibrated" if stage == "permuted" else stage)
    gen = torch.Generator().manual_seed(seed)
    use = anchor_utilisation(consensus, anchors, null_trials=settings.null_trials, seed=seed)
    return {
        **agreement(units),
        "to_consensus_cosine": statistics.fmean(
            (u * consensus).sum(dim=1).mean().item() for u in units
        ),
        "anchors": use.as_dict(),
        "consensus_cv": _finite(pentachoron_cv(consensus, n_samples=400, generator=gen)),
    }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class SoupStudy:
    settings: SoupSettings
    runs: list[dict[str, Any]]
    experts: list[dict[str, Any]]
    dataset: dict[str, Any]
    fits: dict[int, SoupFit]

    def summary(self) -> dict[str, Any]:
        """stage → statistic → {mean, std, values} over seeds (anchors flattened)."""
        out: dict[str, Any] = {}
        for run in self.runs:
            for stage, report in run["stages"].items():
                flat = {k: v for k, v in report.items() if k != "anchors"}
                flat.update({f"anchors_{k}": v for k, v in report["anchors"].items()})
                for name, value in flat.items():
                    if value is None:
                        continue
                    out.setdefault(stage, {}).setdefault(name, {"values": []})
                    out[stage][name]["values"].append(value)
        for stats in out.values():
            for node in stats.values():
                node.update(spread(node["values"]))
        return out


def run_soup_study(
    dataset: ImageDataset,
    experts: list[Expert],
    settings: SoupSettings | None = None,
    *,
    progress: bool = False,
) -> SoupStudy:
    """Fit and judge the soup on every seed (module docstring)."""
    cfg = settings or SoupSettings()
    names = [e.name for e in experts]
    if len(set(names)) != len(names):
        raise ValueError(f"expert names must be distinct, got {names}")
    held_out_split(len(dataset), cfg.test_fraction, cfg.seeds[0])  # refuses a bad split now
    feats = expert_features(experts, dataset, cfg.seeds, cfg.test_fraction)
    runs, fits = [], {}
    with progress_bar(progress) as bar:
        task = bar.add_task("soup", total=len(cfg.seeds))
        for seed in cfg.seeds:
            train_idx, test_idx = held_out_split(len(dataset), cfg.test_fraction, seed)
            train = [feats[n, seed][train_idx] for n in names]
            test = [feats[n, seed][test_idx] for n in names]
            check_experts(train, cfg.gpa_dim, cfg.dim)
            fit = fit_soup(train, gpa_dim=cfg.gpa_dim, dim=cfg.dim)
            null_fit = permuted_fit(train, cfg.gpa_dim, cfg.dim, seed)
            anchors = repulsion_anchors(cfg.anchors, cfg.dim, seed)
            stages = {s: stage_report(fit, test, s, anchors, cfg, seed) for s in STAGES}
            stages["permuted"] = stage_report(null_fit, test, "permuted", anchors, cfg, seed)
            runs.append(
                {
                    "seed": seed,
                    "gpa_iterations": len(fit.gpa.history),
                    "gpa_converged": fit.gpa.converged,
                    "gpa_last_change": fit.gpa.history[-1],
                    "cv_uniform": _finite(cv_uniform(len(test_idx), cfg.dim, 5, 400)),
                    "stages": stages,
                }
            )
            fits[seed] = fit
            bar.update(task, advance=1)
    return SoupStudy(
        settings=cfg,
        runs=runs,
        experts=[e.describe() for e in experts],
        dataset={
            "name": dataset.name,
            "n": len(dataset),
            "size": list(dataset.size),
            "fingerprint": dataset.fingerprint,
        },
        fits=fits,
    )


def save_soup_study(study: SoupStudy, folder: str | Path, spec: str | None = None) -> Path:
    """Write every seed's fitted soup (PCA bases, GPA rotations, consensus basis, whitened
    calibrations) and the document."""
    tensors: dict[str, torch.Tensor] = {}
    for seed, fit in study.fits.items():
        p = f"s{seed}"
        tensors[f"{p}.gpa.rotations"] = fit.gpa.rotations
        tensors[f"{p}.gpa.scales"] = fit.gpa.scales
        tensors[f"{p}.consensus_basis"] = fit.consensus_basis
        for k, (mean, basis, w) in enumerate(
            zip(fit.means, fit.bases, fit.calibrations, strict=True)
        ):
            tensors[f"{p}.expert{k}.mean"] = mean
            tensors[f"{p}.expert{k}.basis"] = basis
            tensors[f"{p}.expert{k}.whitener"] = w.source_whitener
            tensors[f"{p}.expert{k}.rotation"] = w.rotation
            tensors[f"{p}.expert{k}.colorer"] = w.target_colorer
    return save_result(folder, SOUP_KIND, tensors, soup_document(study, spec))


def soup_document(study: SoupStudy, spec: str | None = None) -> dict[str, Any]:
    """The JSON document of a soup study: settings, summary, every run, lineage."""
    parents = {"dataset": {**study.dataset, "spec": spec}, "experts": study.experts}
    return {
        "settings": study.settings.model_dump(mode="json"),
        "stages": [*STAGES, *NULL_STAGES],
        "summary": study.summary(),
        "runs": study.runs,
        "lineage": lineage(SOUP_KIND, parents),
    }
