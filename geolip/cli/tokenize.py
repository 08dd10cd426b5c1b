"""``geolip tokenize build|encode|decode``: images ↔ axis tokens through a producer and its
codebook (:class:`geolip.downstream.tokenizer.GeolipImageTokenizer`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from geolip.cli import output
from geolip.cli.options import FORCE, JSON, command_group, dataset_spec
from geolip.cli.out_path import claim_output
from geolip.errors import InvalidOptionError

tokenize_app = command_group("Images ↔ axis tokens through a producer and its codebook.")

TOKENIZER = typer.Argument(..., help="A tokenizer folder written by 'geolip tokenize build'.")


def require_suffix(option: str, path: Path | None, suffix: str) -> None:
    """A usage error naming ``option`` unless ``path`` (when given) ends in ``suffix``."""
    if path is not None and path.suffix != suffix:
        raise InvalidOptionError(option, f"expected a {suffix} file, got {path}")


def size_option(text: str | None) -> tuple[int, int] | None:
    """``--size``: ``S`` or ``H,W``, positive integers."""
    if text is None:
        return None
    parts = text.split(",")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or min(values, default=0) < 1:
        raise InvalidOptionError("--size", f"expected S or H,W of positive integers, got {text!r}")
    return (values[0], values[-1])


def _tokenizer(folder: Path) -> Any:
    from geolip.downstream.tokenizer import GeolipImageTokenizer

    return GeolipImageTokenizer.from_pretrained(folder)


@tokenize_app.command()
def build(
    producer: str = typer.Argument(
        ..., help="Checkpoint folder, upstream file or pretrained:NAME."
    ),
    codebook: Path = typer.Option(..., "--codebook", help="The producer's codebook artifact."),
    out: Path = typer.Option(..., "--out", help="Tokenizer folder to write."),
    top_k: int = typer.Option(1, "--top-k", min=1, help="Axes (tokens) per row."),
    calibration: str | None = typer.Option(
        None,
        "--calibration",
        help="Dataset SPEC on which the weights that mix a row's top-k axes in decoding "
        "are fitted.",
        show_default="none: equal weights",
        parser=dataset_spec,
    ),
    force: bool = FORCE,
    json_out: bool = JSON,
) -> None:
    """Write a self-contained tokenizer folder (producer, codebook, settings)."""
    output.set_json_mode(json_out)
    claim_output(out, kind="folder", force=force)
    from geolip.codebook import Codebook
    from geolip.data import open_dataset
    from geolip.downstream.tokenizer import GeolipImageTokenizer
    from geolip.producers.loading import load_producer, require_producer

    model = require_producer(load_producer(producer), producer)
    tok = GeolipImageTokenizer(model, Codebook.load(codebook), top_k)
    if calibration is not None:
        with output.status(f"calibrating rank weights on {calibration}"):
            tok = tok.calibrated(open_dataset(calibration).images)
    tok.save_pretrained(out)
    output.log(f"wrote {out}")
    output.emit(_describe(tok, out), "tokenizer")


def _describe(tok: Any, path: Path) -> dict[str, Any]:
    g = tok.producer.geometry
    return {
        "path": str(path),
        "vocab_size": tok.vocab_size,
        "axes": tok.codebook.size,
        "top_k": tok.top_k,
        "rows_per_patch": g.rows_per_token,
        "patch_size": g.patch_size,
        "tokens_per_patch": g.rows_per_token * tok.top_k,
        "special_tokens": {
            "image_start": tok.image_start_token_id,
            "image_end": tok.image_end_token_id,
            "row_start": tok.row_start_token_id,
            "pad": tok.pad_token_id,
        },
        "codebook_id": tok.codebook.id,
        "producer_id": tok.producer.producer_id,
        "rank_weights": tok.rank_weights.tolist(),
    }


@tokenize_app.command()
def encode(
    tokenizer: Path = TOKENIZER,
    dataset: str = typer.Option(
        ..., "--dataset", help="Dataset spec, e.g. shapes:n=64,size=64.", parser=dataset_spec
    ),
    out: Path = typer.Option(..., "--out", help="Token file to write (.safetensors)."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Images encoded at once."),
    force: bool = FORCE,
    json_out: bool = JSON,
) -> None:
    """Tokenize every image of a dataset: ids (N, L) and attention mask in one file."""
    output.set_json_mode(json_out)
    require_suffix("--out", out, ".safetensors")
    claim_output(out, kind="file", force=force)
    from geolip.data import open_dataset
    from geolip.downstream.token_files import tokenize_dataset, usage_report, write_tokens

    tok = _tokenizer(tokenizer)
    data = open_dataset(dataset)
    ids = tokenize_dataset(tok, data, batch_size=batch_size, progress=not json_out)
    write_tokens(out, tok, ids, data)
    output.log(f"wrote {out}")
    doc = {
        "out": str(out),
        "dataset": dataset,
        "images": int(ids.shape[0]),
        "size": list(data.size),
        "tokens_per_image": int(ids.shape[1]),
        "vocab_size": tok.vocab_size,
        "usage": usage_report(tok, ids),
    }
    output.emit(doc, "tokens")


@tokenize_app.command()
def decode(
    tokenizer: Path = TOKENIZER,
    tokens: Path = typer.Argument(..., help="Token file written by 'geolip tokenize encode'."),
    out: Path = typer.Option(..., "--out", help="Image file to write (.safetensors)."),
    size: str | None = typer.Option(
        None, "--size", help="Output size S or H,W.", show_default="the token grid's"
    ),
    png: Path | None = typer.Option(
        None, "--png", help="Also write the first 16 images as a PNG row.", show_default="none"
    ),
    force: bool = FORCE,
    json_out: bool = JSON,
) -> None:
    """Decode a token file through the producer's decoder into images (N, C, H, W)."""
    output.set_json_mode(json_out)
    require_suffix("--out", out, ".safetensors")
    require_suffix("--png", png, ".png")
    target = size_option(size)
    claim_output(out, kind="file", force=force)
    claim_output(png, kind="file", force=force)
    import torch

    from geolip.downstream.token_files import (
        image_grid_png,
        read_tokens,
        write_images,
        write_png,
    )

    tok = _tokenizer(tokenizer)
    ids = read_tokens(tokens, tok)
    with output.status(f"decoding {ids.shape[0]} images"):
        images = torch.stack(tok.batch_decode(ids, target))
    write_images(out, images)
    output.log(f"wrote {out}")
    if png is not None:
        write_png(png, image_grid_png([images[:16]], ["geolip decode"]))
        output.log(f"wrote {png}")
    doc = {
        "out": str(out),
        "png": None if png is None else str(png),
        "images": int(images.shape[0]),
        "shape": list(images.shape[1:]),
    }
    output.emit(doc, "decoded")
