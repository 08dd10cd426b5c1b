"""The model cards (``README.md``) geolip generates for the repos it publishes.

A codebook's card: Hub metadata, then the identity table, the quality table and the null-model
report.

Front matter: ``library_name: geolip``, ``license``, ``tags`` and, when the publisher names the
Hub repos of the parents (the lineage records parent *ids*, which say nothing about where they
are published), ``base_model`` with a ``base_model_relation`` read off the lineage:

| lineage | relation | why |
|---|---|---|
| merge | ``merge`` | the axes of several parents in one codebook |
| extract | ``adapter`` | the codebook reads its producer's rows: of no use without that model |
| extend, align, rotate, diff | ``finetune`` | a self-contained derivative of one parent codebook |
| create, random | none | no parent |

A ``geolip`` block repeats the id, K, D, format version and the whole lineage, so the card alone
says what the repo holds and where it came from.

A producer's card records the sha256 of its config and of its weights as
:meth:`~geolip.producers.contract.ProducerModule.producer_info` computes them, the same hashes
every codebook extracted from that model carries in ``meta.producer``.

Both cards are pure functions of their arguments, so re-publishing the same thing re-sends the
same bytes (and the Hub makes no empty commit).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import yaml

from geolip.codebook.schema import (
    FORMAT_TAG,
    FORMAT_VERSION,
    ControlReport,
    NullReport,
    QualityReport,
)

if TYPE_CHECKING:
    from geolip.codebook.core import Codebook
    from geolip.producers.contract import ProducerModule

DEFAULT_LICENSE = "apache-2.0"
RELATIONS: Mapping[str, str] = MappingProxyType(
    {
        "merge": "merge",
        "extract": "adapter",
        "extend": "finetune",
        "align": "finetune",
        "rotate": "finetune",
        "diff": "finetune",
    }
)


def front_matter(metadata: Mapping[str, Any]) -> str:
    """``---``-fenced YAML, keys in the given order. Non-ASCII characters are written as
    escapes: PyYAML writes some of them raw (U+0085, U+2028) and then reads them back as line
    breaks, so only escaped text parses back to exactly the lineage and name that were sent."""
    text = yaml.safe_dump(dict(metadata), sort_keys=False, allow_unicode=False, width=1000)
    return f"---\n{text}---\n"


def card_metadata(
    cb: Codebook, base_model: Sequence[str] = (), license: str = DEFAULT_LICENSE
) -> dict[str, Any]:
    """The front matter of ``cb``'s card as a dict.

    Raises:
        ValueError: ``base_model`` given for a codebook whose lineage has no parent.
    """
    operation = cb.meta.lineage.operation
    if base_model and operation not in RELATIONS:
        raise ValueError(f"a {operation!r} codebook has no parent, so no base_model to name")
    meta: dict[str, Any] = {
        "library_name": "geolip",
        "license": license,
        "tags": ["geolip", "codebook", "projective-codebook", f"lineage-{operation}"],
    }
    if base_model:
        meta["base_model"] = list(base_model)
        meta["base_model_relation"] = RELATIONS[operation]
    meta["geolip"] = {
        "codebook_id": cb.id,
        "format": FORMAT_TAG,
        "format_version": FORMAT_VERSION,
        "name": cb.name,
        "dim": cb.dim,
        "size": cb.size,
        "lineage": cb.meta.lineage.model_dump(mode="json"),
    }
    return meta


def codebook_card(
    cb: Codebook,
    *,
    repo_id: str,
    quality: QualityReport | None,
    quality_source: str,
    base_model: Sequence[str] = (),
    license: str = DEFAULT_LICENSE,
) -> str:
    """The full ``README.md``: a pure function of its arguments, so re-publishing the same
    codebook re-sends the same bytes (and the Hub makes no empty commit)."""
    parts = [
        front_matter(card_metadata(cb, base_model, license)),
        f"# {cb.name}\n",
        f"A geolip projective codebook: {cb.size} unit axes in "
        f"R^{cb.dim}, read as points of RP^{cb.dim - 1} (an axis and its negative are one "
        "point). Axis i is token i.\n",
        _identity(cb),
        _quality(quality, quality_source, cb.dim),
        _usage(cb, repo_id),
    ]
    return "\n".join(parts)


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _identity(cb: Codebook) -> str:
    meta = cb.meta
    lineage = meta.lineage
    made = lineage.operation
    if lineage.parents:
        made += " of " + ", ".join(f"`{p[:12]}`" for p in lineage.parents)
    if lineage.parameters:
        made += " (" + ", ".join(f"{k}={v}" for k, v in sorted(lineage.parameters.items())) + ")"
    rows: list[list[object]] = [
        ["codebook id", f"`{cb.id}`"],
        ["axes × dimension", f"{cb.size} × {cb.dim}"],
        ["format", f"{FORMAT_TAG} v{FORMAT_VERSION}"],
        ["per-axis stats", ", ".join(sorted(cb.stats)) or "none"],
        ["lineage", made],
    ]
    if meta.producer is not None:
        p = meta.producer
        weights = f", weights sha256 `{p.weights_sha256[:16]}…`" if p.weights_sha256 else ""
        rows.append(["producer", f"{p.kind}{f' ({p.name})' if p.name else ''}{weights}"])
    if meta.extraction is not None:
        e = meta.extraction
        rows.append(
            [
                "extraction",
                f"{e.calibration}, n={e.n}, seed {e.seed}, {e.aggregation} of V={e.n_rows} rows, "
                f"{e.n_pairs} antipodal pairs merged",
            ]
        )
    rows.append(["created", f"{meta.created_at} by geolip {meta.geolip_version}"])
    return "## Identity\n\n" + _table(["", ""], rows)


def _quality(q: QualityReport | None, source: str, dim: int) -> str:
    if q is None:
        return "## Quality\n\nNo quality report: a single axis has no pairwise statistics.\n"
    text = (
        f"## Quality, beside its null\n\nEach statistic next to what random axes give "
        f"(quality {source}).\n\n"
        + _table(["statistic", "observed", "reference", "reading"], _quality_rows(q, dim))
    )
    text += _null_model(q.null)
    if q.controls:
        text += _controls(q.controls)
    return text


def _quality_rows(q: QualityReport, dim: int) -> list[list[object]]:
    """Each statistic beside its uniform baseline or null, and how to read it."""
    n = q.null
    rows: list[list[object]] = [
        [
            "mean projective angle (rad)",
            f"{q.mean_projective_angle:.4f}",
            f"uniform RP^{dim - 1}: {q.uniform_baseline:.4f} exact, "
            f"{q.uniform_baseline_mc:.4f} Monte-Carlo",
            q.mean_angle_method,
        ],
        [
            "deviation from uniform (rad)",
            f"{q.deviation:+.4f}",
            f"null {n.deviation_mean:+.4f} ± {n.deviation_sd:.4f} "
            f"(p5 {n.deviation_p5:+.4f}, p95 {n.deviation_p95:+.4f})",
            f"percentile {n.percentile:.1f} of the null",
        ],
        [
            "statute",
            q.statute,
            f"null clean fraction {n.clean_fraction:.0%}",
            "projective-clean" if q.clean else "not clean",
        ],
        ["effective rank", f"{q.effective_rank:.3f}", f"null {q.effective_rank_null_mean:.3f}", ""],
    ]
    if n.pairs_mean is not None and q.pair_fraction is not None:
        rows.append(
            [
                "pair fraction",
                f"{q.pair_fraction:.3f} of axes, {q.pair_fraction_rows or 0:.3f} of rows",
                f"null pairs {n.pairs_mean:.2f}",
                f"pairs percentile {n.pairs_percentile or 0:.1f}",
            ]
        )
    return rows


def _null_model(n: NullReport) -> str:
    drawn = (
        "V uniform random rows per draw, collapsed exactly like the extraction"
        if n.kind == "rows"
        else "K i.i.d. uniform axes of R^D per draw"
    )
    return (
        f"\n### Null model\n\n{n.n_trials} draws of the i.i.d. null ({drawn}), seed {n.seed}. "
        f"The observed deviation sits at percentile {n.percentile:.1f}, {_reading(n.percentile)}\n"
    )


def _controls(controls: Sequence[ControlReport]) -> str:
    rows = [
        [
            c.name,
            c.n_axes,
            c.n_pairs,
            f"{c.deviation:+.4f}",
            f"{c.null_percentile:.1f}",
            f"{c.distance_to_observed:.4f}",
        ]
        for c in controls
    ]
    text = "\n### Controls\n\nThe same extraction on the untrained network and on shuffled "
    return (
        text
        + "pixels.\n\n"
        + _table(["control", "axes", "pairs", "deviation", "null percentile", "distance"], rows)
    )


def _reading(percentile: float) -> str:
    if percentile < 5:
        return "below 95% of the null draws: the axes sit closer together than random axes."
    if percentile > 95:
        return "above 95% of the null draws: the axes are spread more evenly than random axes."
    return (
        "inside the central 90% of the null: on this statistic the codebook cannot be told "
        "apart from random axes."
    )


def _usage(cb: Codebook, repo_id: str) -> str:
    return (
        "## Use\n\n```python\nfrom geolip import Codebook\n\n"
        f'cb = Codebook.from_hub("{repo_id}")  # verified: file hashes, then the id\n'
        f'assert cb.id == "{cb.id}"\n```\n\n'
        'Pin a commit with `revision="<commit sha>"`; from the shell: '
        f"`geolip codebook pull {repo_id} --out codebook`.\n"
    )


def producer_card(
    model: ProducerModule,
    *,
    repo_id: str,
    base_model: Sequence[str] = (),
    license: str = DEFAULT_LICENSE,
) -> str:
    """The ``README.md`` of a producer repo: a pure function of the model and the arguments."""
    cls = type(model)
    info = model.producer_info()
    n_params = sum(p.numel() for p in model.parameters())
    meta: dict[str, object] = {
        "library_name": "geolip",
        "license": license,
        "tags": ["geolip", "producer", info.kind.replace("_", "-")],
    }
    if base_model:
        meta["base_model"] = list(base_model)
        meta["base_model_relation"] = "finetune"
    meta["geolip"] = {
        "model_class": cls.__name__,
        "kind": info.kind,
        "preset": info.name,
        "parameters": n_params,
        "config_sha256": info.config_sha256,
        "weights_sha256": info.weights_sha256,
    }
    summary = (cls.__doc__ or cls.__name__).strip().splitlines()[0]
    config = json.dumps(model.pretrained_config(), indent=2, sort_keys=True)
    return "\n".join(
        [
            front_matter(meta),
            f"# {repo_id.split('/')[-1]}\n",
            f"A geolip producer, `{cls.__name__}`: {summary}\n",
            "| | |\n|---|---|",
            f"| class | `{cls.__module__}.{cls.__name__}` |",
            f"| preset | {info.name or 'none'} |",
            f"| parameters | {n_params:,} |",
            f"| config sha256 | `{info.config_sha256}` |",
            f"| weights sha256 | `{info.weights_sha256}` |\n",
            "Codebooks extracted from this model carry these two hashes in `meta.producer`.\n",
            f"## Config\n\n```json\n{config}\n```\n",
            "## Use\n",
            f"```python\nfrom {cls.__module__} import {cls.__name__}\n\n"
            f'model = {cls.__name__}.from_pretrained("{repo_id}")  # verified: file hashes, '
            "then a strict load\n```\n",
            'Pin a commit with `revision="<commit sha>"`; from the shell: '
            f"`geolip model pull {repo_id} --out model`.\n",
        ]
    )
