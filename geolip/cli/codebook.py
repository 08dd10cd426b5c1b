"""``geolip codebook ...``: make, inspect, verify and combine codebook artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from geolip.cli import output
from geolip.cli.options import FORCE, JSON, command_group
from geolip.cli.out_path import claim_output

if TYPE_CHECKING:
    from geolip.codebook import Codebook

codebook_app = command_group("Make, inspect, verify and combine codebook artifacts.")

NULL_TRIALS = typer.Option(300, "--null-trials", min=10, help="Trials of the i.i.d. null model.")
TOL = typer.Option(5.0, "--tol-deg", min=0.0, help="Projective angle (deg) that counts as equal.")
NULL_SEED_SALT = 0x6E756C6C
NO_ALIGN = typer.Option(False, "--no-align", help="Assume both codebooks share one frame.")
COUNT_NULL_TRIALS = typer.Option(
    8,
    "--null-trials",
    min=0,
    help="Random codebooks behind the expected count (0: none; each costs one alignment).",
)


def _load(path: Path) -> Codebook:
    from geolip.codebook import Codebook

    return Codebook.load(path)


def _trials(null: dict[str, Any]) -> dict[str, Any]:
    return {"n_trials": null["n_trials"], "seed": null["seed"]}


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


def _count_null(
    a: Codebook, k_b: int, tol_deg: float, align: bool, null_trials: int
) -> dict[str, Any] | None:
    """diff/merge counts for an i.i.d. second codebook of the same K, D (None for 0 trials)."""
    if null_trials == 0:
        return None
    from geolip.codebook.algebra import novel_count_null

    with output.status(f"counting against {null_trials} i.i.d. codebooks"):
        return novel_count_null(a, k_b, tol_deg=tol_deg, align=align, n_trials=max(2, null_trials))


def _write_derived(
    derived: Codebook, base: Codebook, out: Path, verb: str, extra: dict[str, Any] | None = None
) -> None:
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
        **(extra or {}),
    }
    output.emit(doc, f"{verb} {derived.id[:12]}")


@codebook_app.command()
def random(
    k: int = typer.Option(..., "--k", min=2, help="Number of axes K."),
    d: int = typer.Option(..., "--d", min=2, help="Dimension D."),
    out: Path = typer.Option(..., "--out", help="Artifact folder (or *.safetensors) to write."),
    seed: int = typer.Option(0, "--seed", help="Seed of the Gaussian rows."),
    name: str = typer.Option(
        "", "--name", help="Name of the codebook.", show_default="random-K<k>-D<d>-s<seed>"
    ),
    null_trials: int = NULL_TRIALS,
    force: bool = FORCE,
    json_out: bool = JSON,
) -> None:
    """Write a random codebook (the null): K uniform random axes of R^D, drawn i.i.d."""
    output.set_json_mode(json_out)
    claim_output(out, kind="artifact", force=force)
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
    name: str = typer.Option(
        "", "--name", help="Name of the merged codebook.", show_default="FIRST+SECOND"
    ),
    null_trials: int = COUNT_NULL_TRIALS,
    force: bool = FORCE,
    json_out: bool = JSON,
) -> None:
    """Union after alignment: FIRST's axes, then SECOND's axes not within --tol-deg of them.

    Beside the count added, the count expected when SECOND is K' i.i.d. axes (``added_null``);
    a warning on stderr when no more axes align as inliers than for i.i.d. codebooks (at or
    below the null's 95th percentile): the merge proceeds, but the codebooks look unrelated.
    """
    output.set_json_mode(json_out)
    claim_output(out, kind="artifact", force=force)
    a, b = _load(first), _load(second)
    merged = a.merge(b, tol_deg=tol_deg, align=not no_align, name=name or None)
    null = _count_null(a, b.size, tol_deg, not no_align, null_trials)
    params = merged.meta.lineage.parameters
    extra: dict[str, Any] = {"added_null": None, "unrelated": None}
    if null is not None:
        extra["added_null"] = {"mean": null["merge_mean"], "sd": null["merge_sd"], **_trials(null)}
        if not no_align:
            extra["inliers_null"] = {
                "mean": null["inliers_mean"],
                "sd": null["inliers_sd"],
                "p95": null["inliers_p95"],
                **_trials(null),
            }
            extra["unrelated"] = params["inliers"] <= null["inliers_p95"]
            if extra["unrelated"]:
                output.log(
                    f"[yellow]warning[/] the codebooks look unrelated: {params['inliers']} of "
                    f"{params['matched']} matched axes are alignment inliers, no more than for "
                    f"i.i.d. codebooks (null mean {null['inliers_mean']:.1f}, "
                    f"95th percentile {null['inliers_p95']:.1f}); merging anyway"
                )
    _write_derived(merged, a, out, "merged", extra)


@codebook_app.command()
def diff(
    first: Path = typer.Argument(..., help="Codebook whose unmatched axes are listed."),
    second: Path = typer.Argument(..., help="Codebook to compare against."),
    tol_deg: float = TOL,
    no_align: bool = NO_ALIGN,
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Write the unmatched axes as a codebook.",
        show_default="report only",
    ),
    null_trials: int = COUNT_NULL_TRIALS,
    force: bool = FORCE,
    json_out: bool = JSON,
) -> None:
    """Axes of FIRST with no partner within --tol-deg in SECOND (after alignment), beside the
    count expected when SECOND is K' i.i.d. axes (``count_null``)."""
    output.set_json_mode(json_out)
    claim_output(out, kind="artifact", force=force)
    a, b = _load(first), _load(second)
    d = a.diff(b, tol_deg=tol_deg, align=not no_align)
    null = _count_null(a, b.size, tol_deg, not no_align, null_trials)
    count_null = (
        None
        if null is None
        else {"mean": null["diff_mean"], "sd": null["diff_sd"], **_trials(null)}
    )
    if out is not None and d.codebook is not None:
        d.codebook.save(out)
        output.log(f"wrote {out}")
    if not json_out:
        rows = [[i, g] for i, g in zip(d.indices.tolist(), d.angles_deg.tolist(), strict=True)]
        expected = (
            ""
            if count_null is None
            else f" (i.i.d. codebook: {count_null['mean']:.1f} ± {count_null['sd']:.1f})"
        )
        title = f"{len(d)} axes without a partner{expected}"
        output.emit_rows(["index", "nearest angle (deg)"], rows, title)
        return
    doc = {
        "count": len(d),
        "count_null": count_null,
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
    name: str = typer.Option(
        "", "--name", help="Name of the extended codebook.", show_default="BASE's name"
    ),
    force: bool = FORCE,
    json_out: bool = JSON,
) -> None:
    """Append axes after BASE's; existing indices never move."""
    output.set_json_mode(json_out)
    claim_output(out, kind="artifact", force=force)
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
    out: Path | None = typer.Option(
        None, "--out", help="Write MOVING rotated into the frame.", show_default="report only"
    ),
    proper: bool = typer.Option(False, "--proper", help="Rotations only (SO(D)), no reflections."),
    null_trials: int = typer.Option(
        16, "--null-trials", min=0, help="Random pairs for the z-score."
    ),
    seed: int = typer.Option(0, "--seed"),
    force: bool = FORCE,
    json_out: bool = JSON,
) -> None:
    """Projective alignment with unknown correspondence and signs, with a null z-score.

    ``verdict``: "aligned beyond chance" when z ≤ −3 (three null sds below the mean residual
    of aligning i.i.d. codebooks of the same shapes), else "indistinguishable from random".
    The RMS chordal distance is placed in the same null alignments (``distance_null_*``).
    """
    output.set_json_mode(json_out)
    claim_output(out, kind="artifact", force=force)
    import torch

    from geolip.solvers.alignment import ALIGNED_Z

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
        "verdict": res.verdict,
        "verdict_threshold_z": ALIGNED_Z,
        "null_mean_deg": res.null_mean_deg,
        "null_std_deg": res.null_std_deg,
        "distance_null_mean": res.null_distance_mean,
        "distance_null_sd": res.null_distance_std,
        "distance_z": res.distance_z,
        "distance_percentile": res.distance_percentile,
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
