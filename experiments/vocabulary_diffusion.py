"""Discrete diffusion over axis tokens on the digits, measured on the CPU.

    python experiments/vocabulary_diffusion.py --out experiments/out/vocabulary_diffusion

Stages (each cached in OUT, so a rerun resumes where it stopped):

1. a small sphere-solver (V = 8, D = 4, 16 × 16 patches, one channel) trained as an
   autoencoder on the first 1,500 digits at 64² (seed 0): a 64² image is 4 × 4 patches, 128
   axis tokens at top-1, so a CPU transformer can model it;
2. its projective k-means codebook (K = 64) on those digits and a top-1 tokenizer;
3. a class-conditional diffusion model on their tokens;
4. samples at 64² (the training length) and at 128² (4 × longer sequences), a classifier
   (logistic regression on 16 × 16 average-pooled pixels) trained on the real training digits,
   and its accuracy on real held-out digits, on their tokenized reconstructions, on the
   samples, and on samples of the untrained denoiser (the null);
5. PNG grids in docs/figures/ and the numbers in OUT/results.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from torch.nn.functional import adaptive_avg_pool2d

from geolip.data import open_dataset
from geolip.downstream.diffusion import AxisDenoiser, DiffusionModel, SamplingOptions
from geolip.downstream.diffusion_io import load_diffusion
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
PRODUCER_STEPS, PRODUCER_BATCH, PRODUCER_LR = 800, 64, 2e-3
K = 64


def digits() -> tuple:
    """(train, held-out) digits at 64², one channel, standardised, seed 0."""
    return open_dataset(f"digits:size={SIZE}").split(N_TRAIN)


def train_producer(out: Path, images: torch.Tensor) -> SphereSolver:
    """The autoencoder of stage 1 (Adam, MSE of the reconstruction, seeded batches)."""
    folder = out / "producer"
    if folder.is_dir():
        return load_producer(str(folder))
    torch.manual_seed(0)
    model = SphereSolver(PRODUCER)
    optimizer = torch.optim.Adam(model.parameters(), PRODUCER_LR)
    gen = torch.Generator().manual_seed(0)
    for step in range(PRODUCER_STEPS):
        batch = images[torch.randint(len(images), (PRODUCER_BATCH,), generator=gen)]
        loss = (model(batch)["recon"] - batch).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 100 == 0 or step == PRODUCER_STEPS - 1:
            print(f"producer step {step} mse {float(loss.detach()):.4f}", flush=True)
    model.eval()
    model.save_pretrained(folder)
    return model


def pooled(images: torch.Tensor) -> np.ndarray:
    """(N, 1, H, W) → (N, 256) features: 16 × 16 average pooling, any H, W."""
    return adaptive_avg_pool2d(images.float(), (16, 16)).flatten(1).numpy()


def accuracy(clf: LogisticRegression, images: torch.Tensor, labels: torch.Tensor) -> float:
    return float((clf.predict(pooled(images)) == labels.numpy()).mean())


def samples(
    model: DiffusionModel, labels: list[int], size: int, seed: int, guidance: float
) -> torch.Tensor:
    options = SamplingOptions(steps=12, schedule=model.schedule, guidance=guidance)
    ids = model.sample(len(labels), (size, size), labels, seed=seed, options=options)
    return torch.stack(model.tokenizer.batch_decode(ids))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("experiments/out/vocabulary_diffusion"))
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--figures", type=Path, default=Path("docs/figures"))
    args = parser.parse_args()
    torch.set_num_threads(1)  # two shared cores: a second thread only waits
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    train, held = digits()
    t = time.time()
    producer = train_producer(out, train.images)
    timings["producer_s"] = time.time() - t

    t = time.time()
    tok_dir = out / "tokenizer"
    if not tok_dir.is_dir():
        spec = f"digits:size={SIZE},n={N_TRAIN}"  # the same first 1,500 (seeded order)
        cb = extract_kmeans_codebook(
            producer, spec, K, seed=0, null_trials=2, quality_null_trials=50
        )
        GeolipImageTokenizer(producer, cb, 1).save_pretrained(tok_dir)
    tok = GeolipImageTokenizer.from_pretrained(tok_dir)
    timings["codebook_s"] = time.time() - t

    t = time.time()
    config = DiffusionTrainConfig(
        steps=args.steps,
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
    model_dir = out / "model"
    resume = model_dir.is_dir()
    run = train_diffusion(
        tok, train, model_dir, config, resume=resume, progress=True, announce=print
    )
    model = load_diffusion(model_dir)
    timings["diffusion_s"] = time.time() - t
    losses = run.losses

    t = time.time()
    clf = LogisticRegression(max_iter=2000, C=0.5).fit(pooled(train.images), train.labels.numpy())
    held_x, held_y = held.images, held.labels
    recon = torch.stack(tok.batch_decode(tok(held_x, return_tensors="pt")["input_ids"]))
    labels = [c for c in range(10) for _ in range(10)]  # 10 samples per class
    y = torch.tensor(labels)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        untrained = DiffusionModel(
            AxisDenoiser(model.denoiser.config).eval(),
            tok,
            model.classes,
            model.train_size,
            model.schedule,
        )
    result: dict = {
        "device": "CPU (2 cores)",
        "producer": PRODUCER.model_dump(),
        "producer_recon_mse_held_out": float(
            (producer(held_x)["recon"] - held_x).square().mean().detach()
        ),
        "tokenized_recon_mse_held_out": float((recon - held_x).square().mean()),
        "codebook_k": K,
        "tokens_per_image_64": tok.tokens_per_image((64, 64)),
        "tokens_per_image_128": tok.tokens_per_image((128, 128)),
        "train": config.model_dump(),
        "final_loss_mean_last_50": float(np.mean(losses[-50:])) if losses else None,
        "accuracy": {
            "real_held_out": accuracy(clf, held_x, held_y),
            "tokenized_held_out": accuracy(clf, recon, held_y),
        },
    }
    grids = {}
    for guidance in (0.0, 2.0):
        for size in (64, 128):
            for name, m in (("trained", model), ("untrained", untrained)):
                x = samples(m, labels, size, seed=1, guidance=guidance)
                key = f"{name}_{size}_guidance{guidance:g}"
                result["accuracy"][key] = accuracy(clf, x, y)
                grids[key] = x
    first = samples(model, labels[:10], 64, seed=1, guidance=0.0)
    again = samples(model, labels[:10], 64, seed=1, guidance=0.0)
    result["same_seed_identical"] = bool(torch.equal(again, first))
    other = samples(model, labels[:10], 64, seed=2, guidance=0.0)
    result["other_seed_differs"] = not bool(torch.equal(other, first))
    timings["evaluation_s"] = time.time() - t
    result["timings"] = timings
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))

    first = torch.tensor([int((held_y == c).nonzero()[0]) for c in range(10)])
    pick = torch.arange(0, 100, 10)  # one sample per class
    rows = [held_x[first], recon[first]]
    names = ["real held-out", "tokenized (top-1, K = 64)"]

    def title(key: str) -> str:
        name, size, guidance = key.split("_")
        who = "untrained denoiser (null)" if name == "untrained" else "samples"
        tokens = tok.tokens_per_image((int(size), int(size)))
        return (
            f"{who}, classes 0-9, {guidance.replace('guidance', 'guidance ')}, "
            f"{size}² ({tokens} tokens), seed 1"
        )

    for key in ("trained_64_guidance0", "trained_64_guidance2", "untrained_64_guidance0"):
        rows.append(grids[key][pick])
        names.append(title(key))
    args.figures.mkdir(parents=True, exist_ok=True)
    write_png(args.figures / "vocabulary_diffusion_64.png", image_grid_png(rows, names))
    long = ("trained_128_guidance0", "trained_128_guidance2", "untrained_128_guidance0")
    write_png(
        args.figures / "vocabulary_diffusion_128.png",
        image_grid_png([grids[k][pick] for k in long], [title(k) for k in long], scale=1),
    )


if __name__ == "__main__":
    main()
