"""One large image through a Freckles-size sphere-solver, tile by tile: seconds and peak memory.

The model is the Freckles architecture (V = 48, D = 4, 4×4 patches, hidden 384, depth 4, two
cross-attention layers) with its seeded initial weights: speed and memory do not depend on the
weights. Each variant runs one 3 × N × N image through encode, SVD, cross-attention within a
tile, decode, stitch and boundary smoothing under ``torch.no_grad``: ``reconstruct`` keeps only
each tile's decoded patches, ``forward`` (the baseline, float32, 64-patch tiles) also keeps
every per-patch M, U, S and Vt. Reported: the median of ``--repeats`` synchronised runs after
one warm-up, the peak GPU memory above the input and model, and the speed-up over the
baseline.

Before timing, the tiled encode is checked against the untiled one on a 512² crop: the rows
M must agree (they are per patch); so must the whole output of a copy of the model with
cross-attention off (with it on, tiles change which patches attend to each other).

Usage: python benchmarks/bench_large_image.py [--size 4096] [--repeats 5] [--json F] [--no-doc]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from timing import close_provenance, display_path, provenance, write_section

from geolip.producers.presets import get_preset
from geolip.producers.sphere_solver import SphereSolver

BASELINE = "forward, float32, tiles of 64"
VARIANTS = {  # label → (method, tile patches, bf16 autocast, compiled encoder and decoder)
    BASELINE: ("forward", 64, False, False),
    "reconstruct, float32, tiles of 128": ("reconstruct", 128, False, False),
    "reconstruct, bf16, tiles of 64": ("reconstruct", 64, True, False),
    "reconstruct, bf16, tiles of 128": ("reconstruct", 128, True, False),
    "reconstruct, bf16, tiles of 256": ("reconstruct", 256, True, False),
    "reconstruct, bf16 + compile, tiles of 128": ("reconstruct", 128, True, True),
}


def freckles(seed: int = 0, **overrides: object) -> SphereSolver:
    torch.manual_seed(seed)
    config = get_preset("freckles").model.model_copy(update=overrides)
    return SphereSolver(config, preset="freckles").cuda().eval()


@torch.no_grad()
def check_tiling(image: torch.Tensor) -> dict[str, float]:
    """Largest absolute difference, tiled (64) against untiled, on a 512² crop."""
    crop = image[..., :512, :512]
    model = freckles()
    rows = (model.encode_rows(crop, tile_patches=64) - model.encode_rows(crop)).abs().max()
    plain = freckles(n_cross=0)
    recon = (plain(crop, tile_patches=64)["recon"] - plain(crop)["recon"]).abs().max()
    return {"rows_max_abs_diff": rows.item(), "recon_no_cross_max_abs_diff": recon.item()}


@torch.no_grad()
def time_variant(
    image: torch.Tensor, method: str, tile: int, bf16: bool, compiled: bool, repeats: int
) -> dict:
    model = freckles()
    if compiled:
        model._encode = torch.compile(model._encode, dynamic=False)
        model._decode = torch.compile(model._decode, dynamic=False)

    def once() -> torch.Tensor:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            if method == "forward":  # every per-patch output (M, U, S, Vt) kept
                return model(image, tile_patches=tile)["recon"]
            return model.reconstruct(image, tile_patches=tile)

    recon = once()  # warm-up (and compilation)
    if not torch.isfinite(recon).all():
        raise RuntimeError("non-finite reconstruction")
    del recon
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    seconds = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        start = time.perf_counter()
        once()
        torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() - base
    return {"seconds": statistics.median(seconds), "all_seconds": seconds, "peak_bytes": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default=None)
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench_large_image needs a CUDA GPU")
    torch.backends.cuda.matmul.allow_tf32 = False  # float32 means float32 in the baseline
    prov = provenance(device=torch.cuda.get_device_name(0))
    gen = torch.Generator(device="cuda").manual_seed(0)
    image = torch.randn(1, 3, args.size, args.size, generator=gen, device="cuda")
    tiling = check_tiling(image)
    print("tiled vs untiled:", tiling, flush=True)
    results: dict[str, dict | str] = {}
    for label, (method, tile, bf16, compiled) in VARIANTS.items():
        try:
            results[label] = time_variant(image, method, tile, bf16, compiled, args.repeats)
        except Exception as err:  # a failed variant is reported, not hidden
            results[label] = f"failed: {type(err).__name__}: {str(err)[:100]}"
        print(label, results[label], flush=True)
    if args.json:
        data = {
            "provenance": close_provenance(prov),
            "size": args.size,
            "tiling_check": tiling,
            "results": results,
        }
        Path(args.json).write_text(json.dumps(data, indent=2))
    if args.no_doc:
        return
    base = results[BASELINE]
    rows = []
    for label, found in results.items():
        if isinstance(found, str):
            rows.append([label, found, "", ""])
            continue
        ratio = f"{base['seconds'] / found['seconds']:.2f}×" if isinstance(base, dict) else ""
        rows.append([label, f"{found['seconds']:.3f}", f"{found['peak_bytes'] / 2**30:.2f}", ratio])
    notes = f"""
One {args.size} × {args.size} RGB image through the Freckles architecture (encode, SVD,
cross-attention within each tile, decode, stitch, smoothing), no gradients; median of
{args.repeats} synchronised runs after a warm-up; peak GPU memory above the image and the model.
"speed-up" is over the baseline ({BASELINE}). Tiled against untiled on a 512² crop: rows differ
by at most {tiling["rows_max_abs_diff"]:.1e}, and with cross-attention off the reconstruction
by {tiling["recon_no_cross_max_abs_diff"]:.1e}.
"""
    print(
        write_section(
            "large-image",
            f"A {args.size}² image on the GPU",
            ["variant", "seconds", "peak GiB", "speed-up"],
            rows,
            notes,
            prov=prov,
            raw=display_path(args.json) if args.json else None,
        )
    )


if __name__ == "__main__":
    main()
