"""``geolip codebook ...``: make, inspect, verify and combine codebook artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from geolip.cli import output

if TYPE_CHECKING:
    from geolip.codebook import Codebook

codebook_app = typer.Typer(
    help="Make, inspect, verify and combine codebook artifacts.", no_args_is_help=True
)

JSON = typer.Option(False, "--json", help="Print exactly one JSON document on stdout.")
NULL_TRIALS = typer.Option(300, "--null-trials", min=10, help="Trials of the i.i.d. null model.")
TOL = typer.Option(5.0, "--tol-deg", min=0.0, help="Projective angle (deg) that counts as equal.")
NULL_SEED_SALT = 0x6E756C6C
NO_ALIGN = typer.Option(False, "--no-align", help="Assume both codebooks share one frame.")


def _load(path: Path) -> Codebook:
    from geolip.codebook import Codebook

    return Codebook.load(path)


def summary(cb: Codebook, null_trials: int = 300, path: Path | None = None) -> dict[str, Any]:
    """The ``info`` document: identity, format, quality with its null, lineage."""
    meta = cb.meta
    quality, source = meta.quality, "stored"
    if quality is None and cb.size >= 2:
        with output.status(f"measuring quality against {null_trials} null codebooks"):
            quality, source = cb.assess(null_trials=null_trials), "computed"
    return {
        "id": cb.id,
        "name": cb.name,
        "path": None if path is None else str(path),
        "dim": cb.dim,
        "size": cb.size,
        "format_version": cb.format_version,
        "quality_source": source if quality is not None else None,
        "quality": None if quality is None else quality.model_dump(mode="json"),
        "lineage": meta.lineage.model_dump(mode="json"),
        "producer": None if meta.producer is None else meta.producer.model_dump(mode="json"),
        "extraction": None if meta.extraction is None else meta.extraction.model_dump(mode="json"),
        "stats": sorted(cb.stats),
        "created_at": meta.created_at,
        "geolip_version": meta.geolip_version,
    }


def _write_derived(derived: Codebook, base: Codebook, out: Path, verb: str) -> None:
    """Save a codebook made from ``base`` and report what was added and from where."""
    derived.save(out)
    output.log(f"wrote {out}")
    doc = {
        "id": derived.id,
        "size": derived.size,
        "dim": derived.dim,
        "added": derived.size - base.size,
        "lineage": derived.meta.lineage.model_dump(mode="json"),
        "path": str(out),
    }
    output.emit(doc, f"{verb} {derived.id[:12]}")


@codebook_app.command()
def random(
    k: int = typer.Option(..., "--k", min=2, help="Number of axes K."),
    d: int = typer.Option(..., "--d", min=2, help="Dimension D."),
    out: Path = typer.Option(..., "--out", help="Artifact folder (or *.safetensors) to write."),
    seed: int = typer.Option(0, "--seed", help="Seed of the Gaussian rows."),
    name: str = typer.Option("", "--name", help="Name; default random-K<k>-D<d>-s<seed>."),
    null_trials: int = NULL_TRIALS,
    json_out: bool = JSON,
) -> None:
    """Write an i.i.d. null codebook: K uniform random axes of R^D."""
    output.set_json_mode(json_out)
    from geolip.codebook import Codebook

    cb = Codebook.random(k, d, seed=seed, name=name or None)
    # the null must not replay the codebook's own random stream
    with output.status(f"measuring quality against {null_trials} null codebooks"):
        cb = cb.with_meta(quality=cb.assess(null_trials=null_trials, seed=seed ^ NULL_SEED_SALT))
    written = cb.save(out)
    output.log(f"wrote {written}")
    output.emit_summary(summary(cb, path=out))


@codebook_app.command()
def info(
    path: Path = typer.Argument(..., help="Artifact folder or .safetensors file."),
    null_trials: int = NULL_TRIALS,
    json_out: bool = JSON,
) -> None:
    """Identity, format, quality beside its null model, and lineage of a codebook."""
    output.set_json_mode(json_out)
    cb = _load(path)
    output.emit_summary(summary(cb, null_trials, path))


@codebook_app.command()
def validate(
    paths: list[Path] = typer.Argument(..., help="Artifacts to verify."),
    json_out: bool = JSON,
) -> None:
    """Verify artifacts (format, version, hashes, finiteness, unit norms); exit 3 on failure."""
    output.set_json_mode(json_out)
    from geolip.errors import GeolipError

    results = []
    for p in paths:
        try:
            cb = _load(p)
            results.append({"path": str(p), "ok": True, "id": cb.id, "error": None})
        except GeolipError as err:
            results.append({"path": str(p), "ok": False, "id": None, "error": str(err)})
            output.log(f"[red]invalid[/] {err}")
    output.emit_rows(
        ["path", "ok", "id / problem"],
        [[r["path"], r["ok"], r["id"][:12] if r["ok"] else r["error"]] for r in results],
        "validation",
    )
    if json_out:
        output.emit({"results": results, "ok": all(r["ok"] for r in results)}, "validation")
    if not all(r["ok"] for r in results):
        raise typer.Exit(3)


@codebook_app.command()
def merge(
    first: Path = typer.Argument(..., help="Base codebook; its indices are kept."),
    second: Path = typer.Argument(..., help="Codebook whose novel axes are appended."),
    out: Path = typer.Option(..., "--out", help="Where to write the merged artifact."),
    tol_deg: float = TOL,
    no_align: bool = NO_ALIGN,
    name: str = typer.Option("", "--name"),
    json_out: bool = JSON,
) -> None:
    """Union after alignment: FIRST's axes, then SECOND's axes not within --tol-deg of them."""
    output.set_json_mode(json_out)
    a, b = _load(first), _load(second)
    merged = a.merge(b, tol_deg=tol_deg, align=not no_align, name=name or None)
    _write_derived(merged, a, out, "merged")


@codebook_app.command()
def diff(
    first: Path = typer.Argument(..., help="Codebook whose unmatched axes are listed."),
    second: Path = typer.Argument(..., help="Codebook to compare against."),
    tol_deg: float = TOL,
    no_align: bool = NO_ALIGN,
    out: Path | None = typer.Option(None, "--out", help="Write the unmatched axes as a codebook."),
    json_out: bool = JSON,
) -> None:
    """Axes of FIRST with no partner within --tol-deg in SECOND (after alignment)."""
    output.set_json_mode(json_out)
    a, b = _load(first), _load(second)
    d = a.diff(b, tol_deg=tol_deg, align=not no_align)
    if out is not None and d.codebook is not None:
        d.codebook.save(out)
        output.log(f"wrote {out}")
    if not json_out:
        rows = [[i, g] for i, g in zip(d.indices.tolist(), d.angles_deg.tolist(), strict=True)]
        output.emit_rows(["index", "nearest angle (deg)"], rows, f"{len(d)} axes without a partner")
        return
    doc = {
        "count": len(d),
        "tol_deg": tol_deg,
        "indices": d.indices.tolist(),
        "angles_deg": d.angles_deg.tolist(),
        "id": None if d.codebook is None else d.codebook.id,
    }
    output.emit(doc, "diff")


@codebook_app.command()
def extend(
    base: Path = typer.Argument(..., help="Codebook to extend."),
    axes: Path = typer.Option(..., "--axes", help="Codebook artifact or .npy (K, D) of new axes."),
    out: Path = typer.Option(..., "--out"),
    name: str = typer.Option("", "--name"),
    json_out: bool = JSON,
) -> None:
    """Append axes after BASE's; existing indices never move."""
    output.set_json_mode(json_out)
    cb = _load(base)
    if axes.suffix == ".npy":
        import numpy as np

        new: Any = np.load(axes, allow_pickle=False)
    else:
        new = _load(axes)
    extended = cb.extend(new, name=name or None)
    _write_derived(extended, cb, out, "extended")


@codebook_app.command()
def align(
    reference: Path = typer.Argument(..., help="Codebook that defines the frame."),
    moving: Path = typer.Argument(..., help="Codebook to align onto REFERENCE."),
    out: Path | None = typer.Option(None, "--out", help="Write MOVING rotated into the frame."),
    proper: bool = typer.Option(False, "--proper", help="Rotations only (SO(D)), no reflections."),
    null_trials: int = typer.Option(
        16, "--null-trials", min=0, help="Random pairs for the z-score."
    ),
    seed: int = typer.Option(0, "--seed"),
    json_out: bool = JSON,
) -> None:
    """Projective alignment with unknown correspondence and signs, with a null z-score."""
    output.set_json_mode(json_out)
    import torch

    ref, mov = _load(reference), _load(moving)
    with output.status(f"aligning, then {null_trials} null alignments for the z-score"):
        res = ref.align(mov, proper=proper, null_trials=null_trials, seed=seed)
    eye = torch.eye(ref.dim, dtype=torch.float64)
    doc = {
        "reference": ref.id,
        "moving": mov.id,
        "matched": int(res.matching.shape[0]),
        "inliers": int(res.inliers.sum()),
        "mean_residual_deg": res.mean_residual_deg,
        "median_residual_deg": float(res.residual_deg.median()),
        "max_residual_deg": float(res.residual_deg.max()),
        "rms_chordal": res.rms_chordal,
        "z_score": res.z_score,
        "null_mean_deg": res.null_mean_deg,
        "null_std_deg": res.null_std_deg,
        "rotation_distance_from_identity": float((res.rotation - eye).norm()),
        "det": round(float(torch.linalg.det(res.rotation))),
        "rotation": res.rotation.tolist(),
        "matching": res.matching.tolist(),
        "signs": res.signs.tolist(),
        "residual_deg": res.residual_deg.tolist(),
        "aligned_id": None,
    }
    if out is not None:
        moved = mov.aligned_to(ref, proper=proper, null_trials=0, seed=seed)
        moved.save(out)
        doc["aligned_id"] = moved.id
        output.log(f"wrote {out}")
    if not json_out:
        for key in ("rotation", "matching", "signs", "residual_deg"):
            doc.pop(key)
    output.emit(doc, "alignment")
