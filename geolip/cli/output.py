"""How commands speak: rich tables on stderr-safe consoles, or one JSON document on stdout."""

from __future__ import annotations

import json
import sys
from contextlib import AbstractContextManager
from typing import Any, NoReturn

from rich.console import Console
from rich.markup import escape
from rich.table import Table

stdout = Console(highlight=False)
stderr = Console(stderr=True, highlight=False)

_json_mode = False


def set_json_mode(enabled: bool) -> None:
    """In JSON mode the only thing on stdout is one JSON document, errors included."""
    global _json_mode
    _json_mode = enabled


def emit(doc: dict[str, Any], title: str) -> None:
    """Print ``doc`` as JSON (JSON mode) or as a rich table of its flattened fields."""
    if _json_mode:
        sys.stdout.write(json.dumps(doc, indent=2, default=_plain) + "\n")
        return
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("field", style="bold cyan")
    table.add_column("value")
    for key, value in _flatten(doc):
        table.add_row(key, _fmt(value))
    stdout.print(table)


def emit_summary(doc: dict[str, Any]) -> None:
    """A codebook summary: identity, then every statistic beside its baseline and null."""
    if _json_mode:
        emit(doc, "codebook")
        return
    ident = {k: doc[k] for k in ("id", "name", "path", "dim", "size", "format_version")}
    emit(
        {**ident, "created": f"{doc['created_at']} by geolip {doc['geolip_version']}"},
        f"codebook {doc['id'][:12]}",
    )
    q = doc["quality"]
    if q is not None:
        emit_rows(
            ["statistic", "observed", "baseline / null", "reading"],
            quality_rows(q),
            f"quality ({doc['quality_source']}; null: {q['null']['kind']}, "
            f"{q['null']['n_trials']} trials)",
        )
        if q["controls"]:
            emit_rows(
                [
                    "control",
                    "axes",
                    "pairs",
                    "deviation",
                    "null percentile",
                    "distance to codebook",
                    "distance null",
                    "distance z",
                ],
                [
                    [
                        c["name"],
                        c["n_axes"],
                        c["n_pairs"],
                        f"{c['deviation']:+.4f}",
                        f"{c['null_percentile']:.1f}",
                        f"{c['distance_to_observed']:.4f}",
                        _distance_null(c),
                        "—" if c.get("distance_z") is None else f"{c['distance_z']:+.1f}",
                    ]
                    for c in q["controls"]
                ],
                "controls: the same extraction changed once (untrained network, another "
                "calibration, constant input, shuffled pixels); distance beside the distance of "
                "unrelated random codebooks (z ≪ 0: the control gives the same codebook)",
            )
    emit({k: doc[k] for k in ("lineage", "producer", "extraction", "stats")}, "provenance")


def _distance_null(control: dict[str, Any]) -> str:
    mean, sd = control.get("distance_null_mean"), control.get("distance_null_sd")
    return "—" if mean is None or sd is None else f"{mean:.3f} ± {sd:.3f}"


def quality_rows(q: dict[str, Any]) -> list[list[str]]:
    """Rows of the quality table; each statistic is printed with its reference."""
    n = q["null"]
    rows = [
        [
            "mean projective angle (rad)",
            f"{q['mean_projective_angle']:.4f}",
            f"uniform {q['uniform_baseline']:.4f} exact, {q['uniform_baseline_mc']:.4f} MC",
            q["mean_angle_method"],
        ],
        [
            "deviation (rad)",
            f"{q['deviation']:+.4f}",
            f"null {n['deviation_mean']:+.4f} ± {n['deviation_sd']:.4f} "
            f"(p5 {n['deviation_p5']:+.4f}, p95 {n['deviation_p95']:+.4f})",
            f"percentile {n['percentile']:.1f} of the null",
        ],
        [
            "statute",
            q["statute"],
            f"null clean fraction {n['clean_fraction']:.0%}",
            "projective-clean" if q["clean"] else "not clean",
        ],
        [
            "effective rank",
            f"{q['effective_rank']:.3f}",
            f"null {q['effective_rank_null_mean']:.3f} ± {q['effective_rank_null_sd']:.3f}",
            f"percentile {q['effective_rank_percentile']:.1f} of the null",
        ],
    ]
    if n["pairs_mean"] is not None:
        rows.append(
            [
                "pair fraction",
                f"{q['pair_fraction']:.3f} of axes, {q['pair_fraction_rows']:.3f} of rows",
                f"null pairs {n['pairs_mean']:.2f}",
                f"pairs percentile {n['pairs_percentile']:.1f}",
            ]
        )
    return rows


def emit_rows(columns: list[str], rows: list[list[Any]], title: str) -> None:
    """A rich table with headers; never used in JSON mode (the caller puts rows in its doc)."""
    if _json_mode:
        return
    table = Table(title=title, title_justify="left")
    for c in columns:
        table.add_column(c)
    for r in rows:
        table.add_row(*(_fmt(v) for v in r))
    stdout.print(table)


def status(message: str) -> AbstractContextManager[Any]:
    """A spinner on stderr while a long computation runs (silent when stderr is not a tty)."""
    return stderr.status(message, spinner="dots")


def log(message: str) -> None:
    """Progress and notes: always stderr."""
    stderr.print(message)


def fail(err: BaseException, code: int) -> NoReturn:
    """Report an error (stderr, plus a JSON document in JSON mode) and exit with ``code``."""
    stderr.print(f"[bold red]error:[/] {err}", markup=True, soft_wrap=True)
    if _json_mode:
        doc: dict[str, Any] = {"error": {"type": type(err).__name__, "message": str(err)}}
        for attr in ("option", "path", "problem", "report"):
            if getattr(err, attr, None) is not None:
                doc["error"][attr] = getattr(err, attr)
        sys.stdout.write(json.dumps(doc, indent=2, default=_plain) + "\n")
    sys.exit(code)


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return str(value)


def _flatten(doc: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.extend(_flatten(value, name + "."))
        else:
            out.append((name, value))
    return out


def _fmt(value: Any) -> str:
    """Plain text for a table cell, with rich markup escaped (lists print as [a, b])."""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        text = ", ".join(_fmt(v) for v in value[:8])
        return escape(f"[{text}{', …' if len(value) > 8 else ''}]")
    return "—" if value is None else escape(str(value))
