"""Editing consistency across scales, measured on the CPU.

    python experiments/vocabulary_editing.py --out experiments/out/vocabulary_editing

The prediction: an edit made at 64² and decoded at 512² matches the same edit made at 512²
directly. For each producer and edit, with ``process_at_scale``:

    A = process_at_scale(x64, edit, 1, size=(512, 512))   edit at 64², decode, resize to 512²
    B = process_at_scale(x64, edit, 8)                      resize to 512², encode, edit, decode

and the same with no edit (A0, B0: the tokenizer alone). Metrics, on both images resized to a
common 64² (anti-aliased) and per image: PSNR of A against B (peak = B's max − min) and the
cosine of the mean-centred images; and the cosine of the edit's effect, (A − A0) against
(B − B0), the consistency of what the edit changes. Null: the same metrics with B taken from an
unrelated image of the set (rolled by one).

Producers: ``pretrained:h2-gaussian`` (3 channels, 4 × 4 patches, V = 32) with a projective
k-means codebook (K = 64) of 64 shapes at 64², top-1, on 8 other shapes; and the digits producer,
tokenizer and diffusion model of ``experiments/vocabulary_diffusion.py`` (run it first) on 8
held-out digits, where inpainting is measured too (at 256², scale 4: at 512² the sequence is
8,192 tokens, minutes per image for the CPU denoiser).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn.functional import interpolate

from geolip.data import open_dataset
from geolip.downstream.diffusion_io import load_diffusion
from geolip.downstream.editing import (
    Edit,
    Inpaint,
    Interpolate,
    SubstituteAxes,
    ZeroAxes,
    edit_codes,
    process_at_scale,
)
from geolip.downstream.token_files import image_grid_png, write_png
from geolip.downstream.tokenizer import GeolipImageTokenizer
from geolip.producers.extract_kmeans import extract_kmeans_codebook
from geolip.producers.loading import load_producer

COMMON = (64, 64)


def small(x: torch.Tensor) -> torch.Tensor:
    return interpolate(x, size=COMMON, mode="bilinear", align_corners=False, antialias=True)


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N,) PSNR of a against reference b, peak = b's own range, per image."""
    mse = (a - b).square().flatten(1).mean(1)
    peak = b.flatten(1).amax(1) - b.flatten(1).amin(1)
    return 10 * torch.log10(peak.square() / mse.clamp(min=1e-12))


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N,) cosine of the mean-centred images."""
    a = a.flatten(1) - a.flatten(1).mean(1, keepdim=True)
    b = b.flatten(1) - b.flatten(1).mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp(min=1e-12)


def stats(values: torch.Tensor) -> dict[str, float]:
    return {"mean": float(values.mean()), "sd": float(values.std()), "n": int(values.numel())}


def per_image(x: torch.Tensor, edit: Edit, scale: float, size, tok, dm) -> torch.Tensor:
    """process_at_scale one image at a time (bounded memory at 512²)."""
    out = []
    for i in range(x.shape[0]):
        e = Interpolate(edit.other[i : i + 1], edit.t) if isinstance(edit, Interpolate) else edit
        out.append(process_at_scale(x[i : i + 1], e, scale, tokenizer=tok, diffusion=dm, size=size))
    return torch.cat(out)


def measure(tok, x, edits: dict[str, tuple[Edit, int]], dm=None) -> tuple[dict, dict]:
    """Metrics of every edit (module docstring) and the images for a figure."""
    results, pictures = {}, {}
    base: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    for name, (edit, factor) in edits.items():
        t = time.time()
        side = x.shape[-1] * factor
        if factor not in base:
            none = ZeroAxes(frozenset())
            base[factor] = (
                small(per_image(x, none, 1, (side, side), tok, dm)),
                small(per_image(x, none, factor, None, tok, dm)),
            )
        a = per_image(x, edit, 1, (side, side), tok, dm)
        b = per_image(x, edit, factor, None, tok, dm)
        a64, b64 = small(a), small(b)
        a0, b0 = base[factor]
        rolled = b64.roll(1, dims=0)
        results[name] = {
            "compared_at": f"edit at {x.shape[-1]}² vs at {side}², both resized to 64²",
            "psnr": stats(psnr(a64, b64)),
            "psnr_null": stats(psnr(a64, rolled)),
            "cosine": stats(cosine(a64, b64)),
            "cosine_null": stats(cosine(a64, rolled)),
            "cosine_at_full_size": stats(cosine(a, b)),
            "effect_cosine": stats(cosine(a64 - a0, b64 - b0)),
            "effect_cosine_null": stats(cosine(a64 - a0, (b64 - b0).roll(1, dims=0))),
            "effect_rms_small": float((a64 - a0).square().mean().sqrt()),
            "effect_rms_large": float((b64 - b0).square().mean().sqrt()),
            "seconds": time.time() - t,
        }
        print(name, json.dumps(results[name]), flush=True)
        pictures[name] = (a64[:4], b64[:4])
    return results, pictures


def usage_order(tok, x: torch.Tensor) -> list[int]:
    idx, _, _, _ = edit_codes(x, ZeroAxes(frozenset()), tokenizer=tok)
    counts = torch.bincount(idx.flatten(), minlength=tok.codebook.size)
    return counts.argsort(descending=True).tolist()


def edits_for(tok, x: torch.Tensor, seed: int = 0) -> dict[str, tuple[Edit, int]]:
    order = usage_order(tok, x)
    gen = torch.Generator().manual_seed(seed)
    rare = [order[-1 - int(i)] for i in torch.randperm(8, generator=gen)[:4]]
    return {
        "none (tokenizer alone)": (ZeroAxes(frozenset()), 8),
        "zero the 8 most-used axes": (ZeroAxes(frozenset(order[:8])), 8),
        "substitute the 4 most-used axes by 4 rare ones": (
            SubstituteAxes(dict(zip(order[:4], rare, strict=True))),
            8,
        ),
        "interpolate t = 0.5 toward the next image": (Interpolate(x.roll(-1, dims=0), 0.5), 8),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("experiments/out/vocabulary_editing"))
    parser.add_argument(
        "--diffusion", type=Path, default=Path("experiments/out/vocabulary_diffusion/model")
    )
    parser.add_argument("--figures", type=Path, default=Path("docs/figures"))
    args = parser.parse_args()
    torch.set_num_threads(1)  # two shared cores: a second thread only waits
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict = {"device": "CPU (2 cores)", "seed": 0}
    figure_rows, figure_names = [], []

    t = time.time()
    h2 = load_producer("pretrained:h2-gaussian")
    tok_dir = args.out / "h2-tokenizer"
    if not tok_dir.is_dir():
        cb = extract_kmeans_codebook(
            h2, "shapes:n=64,size=64,channels=3", 64, seed=0, null_trials=2, quality_null_trials=50
        )
        GeolipImageTokenizer(h2, cb, 1).save_pretrained(tok_dir)
    tok = GeolipImageTokenizer.from_pretrained(tok_dir)
    shapes = open_dataset("shapes:n=8,size=64,seed=1,channels=3").images
    res, pics = measure(tok, shapes, edits_for(tok, shapes))
    results["h2-gaussian on shapes"] = {**res, "seconds": time.time() - t}
    for name, (a, b) in pics.items():
        figure_rows += [a, b]
        figure_names += [f"h2, {name}: edit at 64², decoded at 512²", f"h2, {name}: edit at 512²"]

    t = time.time()
    dm = load_diffusion(args.diffusion)
    digits = open_dataset("digits:size=64").split(1500)[1].first(8).images
    edits = edits_for(dm.tokenizer, digits)
    edits["inpaint the centre box (seed 0)"] = (Inpaint((0.25, 0.25, 0.75, 0.75), seed=0), 4)
    res, pics = measure(dm.tokenizer, digits, edits, dm)
    results["digits producer on digits"] = {**res, "seconds": time.time() - t}
    for name, (a, b) in pics.items():
        side = 256 if "inpaint" in name else 512
        figure_rows += [a, b]
        figure_names += [
            f"digits, {name}: edit at 64², decoded at {side}²",
            f"digits, {name}: edit at {side}²",
        ]
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    args.figures.mkdir(parents=True, exist_ok=True)
    write_png(args.figures / "vocabulary_editing.png", image_grid_png(figure_rows, figure_names))
    print(json.dumps({k: v for k, v in results.items()}, indent=2, default=np.float64))


if __name__ == "__main__":
    main()
