"""Discrete diffusion over axis tokens on the digits, on the CPU or a GPU.

    python experiments/vocabulary_diffusion.py --out experiments/out/vocabulary_diffusion
    python experiments/vocabulary_diffusion.py --device cuda --train-sizes 64,128 \
        --sample-sizes 64,128,256 --out OUT --figures FIGURES

Stages (each cached in OUT, so a rerun resumes where it stopped; a fresh OUT for other
--producer-steps):

1. a small sphere-solver (V = 8, D = 4, 16 × 16 patches, one channel) trained as an
   autoencoder on the first 1,500 digits at 64² (seed 0): a 64² image is 4 × 4 patches, 128
   axis tokens at top-1, so a CPU transformer can model it;
2. its projective k-means codebook (K = 64) on those digits and a top-1 tokenizer;
3. one class-conditional diffusion model on their tokens at every --train-sizes (the same
   digits resized; OUT/model for 64 alone, OUT/model-64-128 for 64 and 128, ...);
4. samples at every --sample-sizes (default 64² and 128², 4 × longer sequences), a
   classifier (logistic regression on 16 × 16 average-pooled pixels, so any size) trained on
   the real training digits at 64², and its accuracy on real held-out digits, on their
   tokenized reconstructions, on the samples, and on samples of the untrained denoiser (the
   null), with guidance 0 and 2;
5. one PNG grid per sample size, docs/figures/vocabulary_diffusion[_TAG]_SIZE.png, and the
   numbers in OUT/results[_TAG].json (the tag names runs on other --train-sizes apart).

With --device cuda the producer's training, the codebook, tokenization, the denoiser's
training and sampling run on the GPU; the CPU generators still draw every batch, mask and
sample, so the draws are those of a CPU run (the weights differ by rounding).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from torch.nn.functional import adaptive_avg_pool2d

from geolip.data import open_dataset
from geolip.data.dataset import ImageDataset
from geolip.downstream.diffusion import AxisDenoiser, DiffusionModel, SamplingOptions
from geolip.downstream.diffusion_io import load_diffusion, read_training
from geolip.downstream.diffusion_train import DiffusionTrainConfig, train_diffusion
from geolip.downstream.token_files import image_grid_png, write_png
from geolip.downstream.tokenizer import GeolipImageTokenizer
from geolip.producers.extract_kmeans import extract_kmeans_codebook
from geolip.producers.loading import load_producer
from geolip.producers.sphere_solver import SphereSolver, SphereSolverConfig

SIZE, N_TRAIN = 64, 1500
PRODUCER = SphereSolverConfig(
    V=8, D=4, patch_size=16, channels=1, hidden=128, depth=1, n_cross=1, readout="linear"
)
PRODUCER_BATCH, PRODUCER_LR = 64, 2e-3
K = 64
GUIDANCES = (0.0, 2.0)


def digits(size: int = SIZE) -> tuple[ImageDataset, ImageDataset]:
    """(train, held-out) digits at size², one channel, standardised, seed 0: the same images
    in the same order at every size."""
    return open_dataset(f"digits:size={size}").split(N_TRAIN)


def train_producer(out: Path, images: torch.Tensor, steps: int, device: str) -> SphereSolver:
    """The autoencoder of stage 1 (Adam, MSE of the reconstruction, seeded batches), on
    ``device``; the weights start the same on every device."""
    folder = out / "producer"
    if folder.is_dir():
        return load_producer(str(folder)).to(device)
    torch.manual_seed(0)
    model = SphereSolver(PRODUCER).to(device)
    optimizer = torch.optim.Adam(model.parameters(), PRODUCER_LR)
    gen = torch.Generator().manual_seed(0)
    images = images.to(device)
    for step in range(steps):
        batch = images[torch.randint(len(images), (PRODUCER_BATCH,), generator=gen)]
        loss = (model(batch)["recon"] - batch).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 100 == 0 or step == steps - 1:
            print(f"producer step {step} mse {float(loss.detach()):.4f}", flush=True)
    model.eval()
    model.save_pretrained(folder)
    return model


def build_tokenizer(out: Path, producer: SphereSolver, device: str) -> GeolipImageTokenizer:
    """Stage 2: the K = 64 projective k-means codebook on the training digits and a top-1
    tokenizer, its producer on ``device``."""
    tok_dir = out / "tokenizer"
    if not tok_dir.is_dir():
        spec = f"digits:size={SIZE},n={N_TRAIN}"  # the same first 1,500 (seeded order)
        cb = extract_kmeans_codebook(
            producer, spec, K, seed=0, null_trials=2, quality_null_trials=50
        )
        GeolipImageTokenizer(producer, cb, 1).save_pretrained(tok_dir)
    tok = GeolipImageTokenizer.from_pretrained(tok_dir)
    tok.producer.to(device)
    return tok


def train_denoiser(
    out: Path, tok: GeolipImageTokenizer, sizes: tuple[int, ...], steps: int, device: str
) -> tuple[DiffusionModel, DiffusionTrainConfig, list[float]]:
    """Stage 3: one class-conditional model on the training digits at every size of
    ``sizes`` (OUT/model for 64 alone, OUT/model-64-128 for 64 and 128, ...); returns it on
    ``device``, its settings and the last 50 losses of the whole run."""
    config = DiffusionTrainConfig(
        steps=steps,
        batch_size=32,
        lr=5e-4,
        warmup=50,
        dim=96,
        depth=3,
        heads=4,
        schedule="cosine",
        seed=0,
        checkpoint_every=200,
    )
    folder = out / ("model" if sizes == (SIZE,) else "model-" + "-".join(map(str, sizes)))
    data = [digits(size)[0] for size in sizes]
    train_diffusion(
        tok,
        data,
        folder,
        config,
        resume=folder.is_dir(),
        progress=True,
        announce=print,
        device=device,
    )
    model = load_diffusion(folder)
    model.denoiser.to(device)
    model.tokenizer.producer.to(device)
    return model, config, [float(x) for x in read_training(folder)[0]["losses"]]


def pooled(images: torch.Tensor) -> np.ndarray:
    """(N, 1, H, W) → (N, 256) features: 16 × 16 average pooling, any H, W."""
    return adaptive_avg_pool2d(images.float().cpu(), (16, 16)).flatten(1).numpy()


def accuracy(clf: LogisticRegression, images: torch.Tensor, labels: torch.Tensor) -> float:
    return float((clf.predict(pooled(images)) == labels.numpy()).mean())


def samples(
    model: DiffusionModel, labels: list[int], size: int, seed: int, guidance: float
) -> torch.Tensor:
    options = SamplingOptions(steps=12, schedule=model.schedule, guidance=guidance)
    ids = model.sample(len(labels), (size, size), labels, seed=seed, options=options)
    return torch.stack(model.tokenizer.batch_decode(ids))


def untrained_twin(model: DiffusionModel) -> DiffusionModel:
    """The same denoiser at its seed-0 initial weights: the null of every table row."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        denoiser = AxisDenoiser(model.denoiser.config).eval()
    return DiffusionModel(
        denoiser.to(model.denoiser.head.weight.device),
        model.tokenizer,
        model.classes,
        model.train_size,
        model.schedule,
    )


def describe_device(device: str) -> str:
    where = torch.device(device)
    if where.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(where)})"
    return f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} thread(s))"


def sizes_option(text: str) -> tuple[int, ...]:
    """``64,128`` → (64, 128): distinct sizes, each at least one 16 × 16 patch, ascending."""
    try:
        sizes = tuple(sorted({int(t) for t in text.split(",") if t.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like 64,128, got {text!r}") from None
    if not sizes or sizes[0] < PRODUCER.patch_size:
        raise argparse.ArgumentTypeError(f"sizes of at least {PRODUCER.patch_size}, got {text!r}")
    return sizes


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("experiments/out/vocabulary_diffusion"))
    parser.add_argument("--steps", type=int, default=800, help="denoiser steps")
    parser.add_argument("--producer-steps", type=int, default=800)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument("--train-sizes", type=sizes_option, default=(SIZE,), help="e.g. 64,128")
    parser.add_argument("--sample-sizes", type=sizes_option, default=(64, 128))
    parser.add_argument("--samples-per-class", type=int, default=10)
    parser.add_argument("--figures", type=Path, default=Path("docs/figures"))
    parser.add_argument(
        "--figures-tag",
        default=None,
        help="names figures vocabulary_diffusion_TAG_SIZE.png and OUT/results_TAG.json; "
        "default: none for --train-sizes 64, train64-128 for 64,128, ...",
    )
    return parser.parse_args()


def main() -> None:
    args = arguments()
    device: str = args.device
    if torch.device(device).type == "cpu":
        torch.set_num_threads(1)  # two shared cores: a second thread only waits
    tag = args.figures_tag
    if tag is None:
        tag = "" if args.train_sizes == (SIZE,) else "train" + "-".join(map(str, args.train_sizes))
    suffix = f"_{tag}" if tag else ""
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, Any] = {}
    train, held = digits()
    t = time.time()
    producer = train_producer(out, train.images, args.producer_steps, device)
    timings["producer_s"] = time.time() - t

    t = time.time()
    tok = build_tokenizer(out, producer, device)
    timings["codebook_s"] = time.time() - t

    t = time.time()
    model, config, losses = train_denoiser(out, tok, args.train_sizes, args.steps, device)
    timings["diffusion_s"] = time.time() - t

    t = time.time()
    clf = LogisticRegression(max_iter=2000, C=0.5).fit(pooled(train.images), train.labels.numpy())
    held_x, held_y = held.images, held.labels
    recon = torch.stack(tok.batch_decode(tok(held_x, return_tensors="pt")["input_ids"]))
    per_class = args.samples_per_class
    labels = [c for c in range(10) for _ in range(per_class)]
    y = torch.tensor(labels)
    untrained = untrained_twin(model)
    with torch.no_grad():
        producer_recon = producer(held_x.to(device))["recon"].cpu()
    all_sizes = sorted({*args.train_sizes, *args.sample_sizes})
    result: dict[str, Any] = {
        "device": describe_device(device),
        "torch": torch.__version__,
        "train_sizes": list(args.train_sizes),
        "sample_sizes": list(args.sample_sizes),
        "producer": PRODUCER.model_dump(),
        "producer_steps": args.producer_steps,
        "producer_recon_mse_held_out": float((producer_recon - held_x).square().mean()),
        "tokenized_recon_mse_held_out": float((recon - held_x).square().mean()),
        "codebook_k": K,
        "tokens_per_image": {str(s): tok.tokens_per_image((s, s)) for s in all_sizes},
        "train": config.model_dump(),
        "final_loss_mean_last_50": float(np.mean(losses)) if losses else None,
        "samples_per_class": per_class,
        "accuracy": {
            "real_held_out": accuracy(clf, held_x, held_y),
            "tokenized_held_out": accuracy(clf, recon, held_y),
        },
    }
    grids: dict[tuple[str, int, float], torch.Tensor] = {}
    timings["sampling_s"] = {}
    for size in args.sample_sizes:
        start = time.time()
        for guidance in GUIDANCES:
            for name, m in (("trained", model), ("untrained", untrained)):
                x = samples(m, labels, size, seed=1, guidance=guidance)
                result["accuracy"][f"{name}_{size}_guidance{guidance:g}"] = accuracy(clf, x, y)
                grids[name, size, guidance] = x
        timings["sampling_s"][str(size)] = time.time() - start
    smallest = args.sample_sizes[0]
    first = samples(model, labels[::per_class], smallest, seed=1, guidance=0.0)
    again = samples(model, labels[::per_class], smallest, seed=1, guidance=0.0)
    result["same_seed_identical"] = bool(torch.equal(again, first))
    other = samples(model, labels[::per_class], smallest, seed=2, guidance=0.0)
    result["other_seed_differs"] = not bool(torch.equal(other, first))
    timings["evaluation_s"] = time.time() - t
    result["timings"] = timings
    (out / f"results{suffix}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))

    shown = torch.tensor([int((held_y == c).nonzero()[0]) for c in range(10)])
    pick = torch.arange(0, 10 * per_class, per_class)  # one sample per class
    trained_at = ", ".join(f"{s}²" for s in args.train_sizes)

    def title(name: str, size: int, guidance: float) -> str:
        who = "untrained denoiser (null)" if name == "untrained" else f"trained at {trained_at}"
        tokens = tok.tokens_per_image((size, size))
        return f"{who}, classes 0-9, guidance {guidance:g}, {size}² ({tokens} tokens), seed 1"

    args.figures.mkdir(parents=True, exist_ok=True)
    for size in args.sample_sizes:
        rows, names = [], []
        if size == SIZE:
            rows += [held_x[shown], recon[shown]]
            names += ["real held-out", "tokenized (top-1, K = 64)"]
        for key in (("trained", size, 0.0), ("trained", size, 2.0), ("untrained", size, 0.0)):
            rows.append(grids[key][pick])
            names.append(title(*key))
        png = image_grid_png(rows, names, scale=2 if size <= SIZE else 1)
        write_png(args.figures / f"vocabulary_diffusion{suffix}_{size}.png", png)


if __name__ == "__main__":
    main()
