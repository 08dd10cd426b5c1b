"""``geolip edit``: edit images in the vocabulary of axes and decode them at any size
(:func:`geolip.downstream.editing.process_at_scale`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from geolip.cli import output
from geolip.cli.options import FORCE, JSON, dataset_spec
from geolip.cli.out_path import claim_output
from geolip.cli.tokenize import require_suffix, size_option
from geolip.errors import InvalidOptionError

EDIT_OPTIONS = ("--zero-axes", "--substitute", "--inpaint", "--interpolate")


def _ints(option: str, text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        problem = f"expected comma-separated integers, got {text!r}"
        raise InvalidOptionError(option, problem) from None


def _mapping(text: str) -> dict[int, int]:
    pairs = {}
    for part in text.split(","):
        source, sep, target = part.partition(":")
        try:
            if not sep:
                raise ValueError
            pairs[int(source)] = int(target)
        except ValueError:
            raise InvalidOptionError(
                "--substitute", f"expected I:J pairs like 3:7,5:1, got {text!r}"
            ) from None
    return pairs


def _box(text: str) -> tuple[float, float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4:
        raise InvalidOptionError(
            "--inpaint",
            f"expected TOP,LEFT,BOTTOM,RIGHT fractions like 0.25,0,0.75,0.5, got {text!r}",
        )
    return values  # type: ignore[return-value]


def edit(
    tokenizer: Path = typer.Argument(
        ..., help="A tokenizer folder (a diffusion model folder is one too)."
    ),
    images: list[Path] | None = typer.Argument(
        None, help="Image files (PNG, JPEG) of one size.", show_default=False
    ),
    dataset: str | None = typer.Option(
        None,
        "--dataset",
        help="Edit a dataset's images instead, e.g. shapes:n=4,size=64.",
        parser=dataset_spec,
        show_default="none",
    ),
    zero_axes: str | None = typer.Option(
        None, "--zero-axes", help="Remove these axes, e.g. 3,17,40.", show_default="none"
    ),
    substitute: str | None = typer.Option(
        None,
        "--substitute",
        help="Code with axis J where axis I was: I:J,...",
        show_default="none",
    ),
    inpaint: str | None = typer.Option(
        None,
        "--inpaint",
        help="Resample a box TOP,LEFT,BOTTOM,RIGHT (fractions of the image) with --diffusion.",
        show_default="none",
    ),
    interpolate: float | None = typer.Option(
        None,
        "--interpolate",
        help="Slerp images 1, 3, … toward images 2, 4, … by T in [0, 1].",
        show_default="none",
    ),
    diffusion: Path | None = typer.Option(
        None, "--diffusion", help="Diffusion model for --inpaint.", show_default="none"
    ),
    label: str | None = typer.Option(
        None, "--class", help="Class for --inpaint (name or index).", show_default="none"
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of --inpaint's sampler."),
    steps: int = typer.Option(12, "--steps", min=1, help="Unmasking steps of --inpaint."),
    scale: float = typer.Option(
        1.0, "--scale", help="Edit at this multiple of the input size.", min=1e-6
    ),
    size: str | None = typer.Option(
        None, "--size", help="Output size S or H,W.", show_default="the edited size"
    ),
    out: Path = typer.Option(..., "--out", help="PNG grid: inputs, then edited images."),
    force: bool = FORCE,
    json_out: bool = JSON,
) -> None:
    """Zero out, substitute, inpaint or interpolate axis tokens, then decode."""
    output.set_json_mode(json_out)
    require_suffix("--out", out, ".png")
    target = size_option(size)
    given = [
        o
        for o, v in zip(EDIT_OPTIONS, (zero_axes, substitute, inpaint, interpolate), strict=True)
        if v is not None
    ]
    if len(given) != 1:
        raise InvalidOptionError(
            "--zero-axes",
            f"give exactly one of {', '.join(EDIT_OPTIONS)}, got {', '.join(given) or 'none'}",
        )
    if bool(images) == (dataset is not None):
        raise InvalidOptionError("--dataset", "give image files or --dataset, not both or none")
    if inpaint is not None and diffusion is None:
        raise InvalidOptionError("--diffusion", "--inpaint needs a diffusion model")
    zeroed = None if zero_axes is None else frozenset(_ints("--zero-axes", zero_axes))
    mapping = None if substitute is None else _mapping(substitute)
    box = None if inpaint is None else _box(inpaint)
    claim_output(out, kind="file", force=force)

    from geolip.data import open_dataset
    from geolip.data.image_files import load_image_files
    from geolip.downstream import editing
    from geolip.downstream.diffusion import SamplingOptions
    from geolip.downstream.diffusion_io import load_diffusion
    from geolip.downstream.token_files import image_grid_png, write_png
    from geolip.downstream.tokenizer import GeolipImageTokenizer

    tok = GeolipImageTokenizer.from_pretrained(tokenizer)
    x = open_dataset(dataset).images if dataset is not None else load_image_files(images)
    dm = None if diffusion is None else load_diffusion(diffusion)
    kind = given[0].removeprefix("--")
    change: editing.Edit
    if zeroed is not None:
        change = editing.ZeroAxes(zeroed)
    elif mapping is not None:
        change = editing.SubstituteAxes(mapping)
    elif box is not None:
        chosen: int | str | None = int(label) if label is not None and label.isdigit() else label
        assert dm is not None
        change = editing.Inpaint(
            box, seed, chosen, SamplingOptions(steps=steps, schedule=dm.schedule)
        )
    else:
        if x.shape[0] % 2:
            raise InvalidOptionError("--interpolate", f"needs pairs of images, got {x.shape[0]}")
        assert interpolate is not None
        change = editing.Interpolate(x[1::2], interpolate)
        x = x[0::2]
    with output.status(f"editing {x.shape[0]} images ({kind})"):
        edited = editing.process_at_scale(
            x, change, scale, tokenizer=tok, diffusion=dm, size=target
        )
        plain = editing.process_at_scale(
            x, editing.ZeroAxes(frozenset()), scale, tokenizer=tok, size=target
        )
    write_png(
        out, image_grid_png([x, plain, edited], ["input", "decoded, unedited", f"edited ({kind})"])
    )
    output.log(f"wrote {out}")
    doc: dict[str, Any] = {
        "out": str(out),
        "edit": kind,
        "images": int(x.shape[0]),
        "scale": scale,
        "shape": list(edited.shape[1:]),
        "change_rms": float((edited - plain).square().mean().sqrt()),
    }
    output.emit(doc, "edit")
