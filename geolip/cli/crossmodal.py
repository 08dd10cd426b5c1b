"""``geolip align-modalities`` and ``geolip soup``: cross-modal retrieval through fixed maps,
and the multi-expert consensus, each over several seeds with its nulls (docs/crossmodal.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from geolip.cli import output
from geolip.cli.options import FORCE, JSON, dataset_spec, options_checked
from geolip.cli.out_path import claim_output
from geolip.errors import InvalidOptionError

DATASET = typer.Option(
    "shapes:n=1000,size=32",
    "--dataset",
    help="Captioned dataset spec (shapes; digits and mnist get templated captions).",
    parser=dataset_spec,
)
SEEDS = typer.Option("0,1,2", "--seeds", help="Comma-separated seeds, one split each.")
OUT = typer.Option(
    None,
    "--out",
    help="Folder for the fitted maps and the result document.",
    show_default="report only",
)
PRODUCER = typer.Option(
    "pretrained:h2-gaussian", "--producer", help="Producer of the 'producer' expert."
)
CODEBOOK = typer.Option(
    None, "--codebook", help="Its codebook (default: extracted from the producer)."
)
TEST_FRACTION = typer.Option(0.25, "--test-fraction", help="Held-out share of the pairs.")


def _list(option: str, text: str, allowed: tuple[str, ...] | None = None) -> tuple[str, ...]:
    items = tuple(t.strip() for t in text.split(",") if t.strip())
    if not items:
        raise InvalidOptionError(option, "needs at least one comma-separated entry")
    if allowed is not None:
        unknown = [t for t in items if t not in allowed]
        if unknown:
            raise InvalidOptionError(option, f"unknown {unknown}; expected from {list(allowed)}")
    return items


def parse_seeds(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in _list("--seeds", text))
    except ValueError:
        raise InvalidOptionError("--seeds", f"expected integers like 0,1,2, got {text!r}") from None


def _captioned(spec: str) -> Any:
    from geolip.data import open_dataset
    from geolip.data.captions import with_captions
    from geolip.errors import DatasetError

    try:
        return with_captions(open_dataset(spec))
    except DatasetError as err:
        raise InvalidOptionError("--dataset", err.problem) from None


def mean_pm(node: dict[str, Any]) -> str:
    return f"{node['mean']:.3f} ± {node['std']:.3f}"


def align_modalities(
    dataset: str = DATASET,
    image_expert: str = typer.Option("cnn", "--image-expert", help="hog, cnn, effnet or producer."),
    text_pooling: str = typer.Option("mean", "--text-pooling", help="MiniLM: mean, max or cls."),
    methods: str = typer.Option(
        "codebook,procrustes,whitened,lstsq,cca,random", "--methods", help="Comma-separated."
    ),
    seeds: str = SEEDS,
    dim: int = typer.Option(32, "--dim", help="Shared dimension (PCA of each side)."),
    test_fraction: float = TEST_FRACTION,
    csls_k: int = typer.Option(10, "--csls-k", help="CSLS neighbourhood."),
    codebook_size: int = typer.Option(32, "--codebook-size", help="Axes per modality codebook."),
    null_trials: int = typer.Option(16, "--null-trials", help="Codebook alignment null."),
    relevance: str = typer.Option(
        "auto", "--relevance", help="caption, label, or auto (label for digits)."
    ),
    producer: str = PRODUCER,
    codebook: Path | None = CODEBOOK,
    out: Path | None = OUT,
    force: bool = FORCE,
    json_out: bool = JSON,
) -> None:
    """Images → text and text → images through one fitted map per method and seed: P@1, P@5,
    coverage by nearest neighbour and CSLS, beside a random-rotation null."""
    output.set_json_mode(json_out)
    claim_output(out, kind="folder", force=force)
    from geolip.data.captions import default_relevance
    from geolip.downstream.crossmodal import ALIGN_METHODS
    from geolip.downstream.crossmodal_study import (
        AlignSettings,
        run_align_study,
        save_align_study,
        study_document,
    )
    from geolip.downstream.expert_registry import IMAGE_EXPERTS, make_expert

    _list("--image-expert", image_expert, IMAGE_EXPERTS)
    if relevance not in ("auto", "caption", "label"):
        raise InvalidOptionError("--relevance", f"caption, label or auto, got {relevance!r}")
    if text_pooling not in ("mean", "max", "cls"):
        raise InvalidOptionError("--text-pooling", f"mean, max or cls, got {text_pooling!r}")
    method_list = _list("--methods", methods, ALIGN_METHODS)
    seed_list = parse_seeds(seeds)
    data = _captioned(dataset)
    with options_checked():
        settings = AlignSettings(
            methods=method_list,  # type: ignore[arg-type]
            seeds=seed_list,
            dim=dim,
            test_fraction=test_fraction,
            csls_k=csls_k,
            codebook_size=codebook_size,
            null_trials=null_trials,
            relevance=default_relevance(data) if relevance == "auto" else relevance,  # type: ignore[arg-type]
        )
    with output.status("loading experts"):
        images = make_expert(image_expert, producer=producer, codebook=codebook)
        text = make_expert("minilm", text_pooling=text_pooling)
    study = run_align_study(data, images, text, settings, progress=not json_out)
    if out is not None:
        save_align_study(study, out, dataset)
        output.log(f"wrote {out}")
    summary = study.summary()
    output.emit_rows(
        ["method", "direction", "scoring", "P@1", "P@5", "coverage", "chance P@1"],
        [
            [
                m,
                d,
                s,
                mean_pm(v["p@1"]),
                mean_pm(v["p@5"]),
                mean_pm(v["coverage"]),
                f"{v['chance_p@1']['mean']:.3f}",
            ]
            for m, by_d in summary.items()
            for d, by_s in by_d.items()
            for s, v in by_s.items()
        ],
        f"{image_expert} ↔ minilm on {dataset}: held-out retrieval, mean ± std over seeds "
        f"{list(seed_list)} (relevance: {settings.relevance})",
    )
    if json_out:
        output.emit(
            {"out": None if out is None else str(out), **study_document(study, dataset)},
            "align-modalities",
        )


def soup(
    dataset: str = DATASET,
    experts: str = typer.Option(
        "hog,cnn,producer,minilm", "--experts", help="Comma-separated, at least two."
    ),
    seeds: str = SEEDS,
    gpa_dim: int = typer.Option(48, "--gpa-dim", help="Per-expert PCA before GPA."),
    dim: int = typer.Option(32, "--dim", help="Consensus dimension."),
    anchors: int = typer.Option(64, "--anchors", help="Constellation size."),
    test_fraction: float = TEST_FRACTION,
    null_trials: int = typer.Option(20, "--null-trials", help="Uniform-rows null of anchors."),
    producer: str = PRODUCER,
    codebook: Path | None = CODEBOOK,
    out: Path | None = OUT,
    force: bool = FORCE,
    json_out: bool = JSON,
) -> None:
    """GPA → PCA → whitened Procrustes → consensus on the sphere: expert agreement and anchor
    use at every stage, beside unaligned and permuted-pair nulls."""
    output.set_json_mode(json_out)
    claim_output(out, kind="folder", force=force)
    from geolip.downstream.expert_registry import EXPERT_NAMES, make_expert
    from geolip.downstream.soup_study import SoupSettings, run_soup_study, save_soup_study

    names = _list("--experts", experts, EXPERT_NAMES)
    if len(set(names)) != len(names) or len(names) < 2:
        raise InvalidOptionError("--experts", f"needs at least two distinct experts, got {names}")
    seed_list = parse_seeds(seeds)
    with options_checked():
        settings = SoupSettings(
            seeds=seed_list,
            gpa_dim=gpa_dim,
            dim=dim,
            anchors=anchors,
            test_fraction=test_fraction,
            null_trials=null_trials,
        )
    if dim > gpa_dim:
        raise InvalidOptionError("--dim", f"must not exceed --gpa-dim ({gpa_dim}), got {dim}")
    data = _captioned(dataset)
    with output.status("loading experts"):
        made = [make_expert(n, producer=producer, codebook=codebook) for n in names]
    study = run_soup_study(data, made, settings, progress=not json_out)
    if out is not None:
        save_soup_study(study, out, dataset)
        output.log(f"wrote {out}")
    summary = study.summary()
    output.emit_rows(
        [
            "stage",
            "pair cosine",
            "cross-expert P@1",
            "active anchors",
            "anchor perplexity",
            "consensus CV",
        ],
        [
            [
                stage,
                mean_pm(s["mean_cosine"]),
                mean_pm(s["cross_p@1"]),
                f"{s['anchors_active']['mean']:.1f} / {anchors} "
                f"(null {s['anchors_null_active']['mean']:.1f})",
                f"{s['anchors_perplexity']['mean']:.1f} "
                f"(null {s['anchors_null_perplexity']['mean']:.1f})",
                mean_pm(s["consensus_cv"]) if "consensus_cv" in s else "—",
            ]
            for stage, s in summary.items()
        ],
        f"soup of {', '.join(names)} on {dataset}: held-out, mean ± std over seeds "
        f"{list(seed_list)}",
    )
    if json_out:
        from geolip.downstream.soup_study import soup_document

        output.emit(
            {"out": None if out is None else str(out), **soup_document(study, dataset)}, "soup"
        )
