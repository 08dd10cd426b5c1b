"""SVAE-transformer and CV-battery measurements (docs/producers-ii.md).

Usage: python experiments/producers_ii.py {svae-text,svae-image,cv,figure} [--seed 0]
       [--epochs 6] [--steps 40] [--batch 16] [--out experiments/out/producers_ii]

- ``svae-text``: the SVAE-transformer (``svae-transformer-minilm``) on MiniLM token states of
  the bundled shape captions, and a plain MLP autoencoder of the same bottleneck width (V·D
  floats a token) and parameter count, through the same Trainer, recipe and data; the
  reconstruction cosine of every held-out token; the α of every epoch; the battery codebook
  beside its i.i.d. rows null and controls.
- ``svae-image``: the same on 2 × 2 patches of 16 × 16 procedural shapes (``svae-transformer``).
- ``cv``: the CV-battery autoencoder and the same model without the CV loss
  (``cv-battery-nocv``) on the 16-noise curriculum at 32²: validation MSE, the CV reached, the KL,
  and each one's codebook beside its null.
- ``figure``: the α trajectories of the two SVAE runs, ``docs/figures/svae_alpha.png``.

Each subcommand writes ``NAME.json`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.functional import cosine_similarity, gelu

from geolip.codebook import Codebook
from geolip.producers.extract import extract_codebook
from geolip.producers.presets import build, train_config
from geolip.producers.sphere_solver import _residual, _residual_blocks
from geolip.producers.svae_transformer import SVAETransformer
from geolip.producers.train import Trainer

TEXT = {
    "preset": "svae-transformer-minilm",
    "recipe": {"dataset": "minilm-tokens:n=2000,tokens=16", "eval_per_type": 64},
    "calibration": "minilm-tokens:n=300,tokens=16,seed=1",
}
IMAGE = {
    "preset": "svae-transformer",
    "recipe": {"dataset": "shapes:n=4000,size=16", "eval_per_type": 32},
    "calibration": "shapes:n=64,size=16,seed=1",
}


class PlainAutoencoder(nn.Module):
    """The control: per token, Linear(F → w) → GELU → residual block → Linear(w → k), then
    Linear(k → w) → GELU → residual block → Linear(w → F); k = the SVAE's V·D bottleneck,
    w chosen for an equal parameter count. Tokens are cut as the SVAE cuts them."""

    def __init__(self, reference: SVAETransformer, width: int) -> None:
        super().__init__()
        self.reference = reference.config
        self._tokens = reference._tokens  # the SVAE's cutting and stitching (no parameters)
        f, k = self.reference.token_size, self.reference.V * self.reference.D
        self.enc_in, self.enc_blocks, self.enc_out = (
            nn.Linear(f, width),
            _residual_blocks(width, 1),
            nn.Linear(width, k),
        )
        self.dec_in, self.dec_blocks, self.dec_out = (
            nn.Linear(k, width),
            _residual_blocks(width, 1),
            nn.Linear(width, f),
        )

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        tokens, rebuild = self._tokens(x)
        z = self.enc_out(_residual(gelu(self.enc_in(tokens)), self.enc_blocks))
        out = self.dec_out(_residual(gelu(self.dec_in(z)), self.dec_blocks))
        return {"recon": rebuild(out)}

    def attention_alphas(self) -> list[torch.Tensor]:
        return []

    def pretrained_config(self) -> dict[str, Any]:
        return {"model_class": "PlainAutoencoder", "reference": self.reference.model_dump()}


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def matched_plain(reference: SVAETransformer) -> PlainAutoencoder:
    """The plain autoencoder whose parameter count is closest to ``reference``'s."""
    target = _n_params(reference)
    best = min(
        range(8, 1025),
        key=lambda w: abs(_n_params(PlainAutoencoder(reference, w)) - target),
    )
    return PlainAutoencoder(reference, best)


@torch.no_grad()
def token_cosine(model: nn.Module, tokens_of: Any, x: torch.Tensor) -> dict[str, float]:
    """Mean, median and 10th percentile over held-out tokens of cos(token, reconstruction)."""
    model.eval()
    tokens, _ = tokens_of(x)
    recon, _ = tokens_of(model(x)["recon"])
    cos = cosine_similarity(recon, tokens, dim=-1).flatten()
    return {
        "mean": cos.mean().item(),
        "median": cos.median().item(),
        "p10": cos.quantile(0.1).item(),
        "n_tokens": cos.numel(),
    }


def train(model: nn.Module, preset: str, recipe: dict[str, Any], seed: int) -> Trainer:
    torch.manual_seed(seed)
    trainer = Trainer(model, train_config(preset, **{**recipe, "seed": seed}), tempfile.mkdtemp())
    trainer.fit(progress=False)
    return trainer


def codebook_report(model: Any, calibration: str, **kw: Any) -> dict[str, Any]:
    """The extracted codebook's quality beside its i.i.d. rows null and the controls."""
    return {
        "calibration": calibration,
        **codebook_summary(extract_codebook(model, calibration, seed=0, **kw)),
    }


def codebook_summary(cb: Codebook) -> dict[str, Any]:
    """Size, pairs, deviation beside the i.i.d. rows null, and every control's report of an
    extracted codebook (``extract_codebook`` or ``anchor_codebook``)."""
    q = cb.meta.quality
    return {
        "n_axes": cb.size,
        "n_pairs": cb.meta.extraction.n_pairs,
        "deviation": q.deviation,
        "null_percentile": q.null.percentile,
        "null_mean": q.null.deviation_mean,
        "null_sd": q.null.deviation_sd,
        "controls": [
            {
                "name": c.name,
                "deviation": c.deviation,
                "null_percentile": c.null_percentile,
                "distance_to_observed": c.distance_to_observed,
                "distance_null_mean": c.distance_null_mean,
                "distance_percentile": c.distance_percentile,
            }
            for c in q.controls
        ],
    }


def svae(setup: dict[str, Any], epochs: int, steps: int, batch: int, seed: int) -> dict[str, Any]:
    recipe = {**setup["recipe"], "epochs": epochs, "steps_per_epoch": steps, "batch_size": batch}
    runs: dict[str, Any] = {}
    svae_model = build(setup["preset"], seed=seed)
    assert isinstance(svae_model, SVAETransformer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        plain = matched_plain(svae_model)
    for name, model in (("svae_transformer", svae_model), ("plain_autoencoder", plain)):
        start = time.perf_counter()
        trainer = train(model, setup["preset"], recipe, seed)
        x = trainer.validation[0]
        runs[name] = {
            "parameters": _n_params(model),
            "seconds": time.perf_counter() - start,
            "validation_mse": trainer.history[-1]["mse"],
            "recon_cos": token_cosine(model, svae_model._tokens, x),
            "history": trainer.history,
        }
    runs["plain_autoencoder"]["width"] = plain.enc_in.out_features
    with svae_model.frozen():
        runs["svae_transformer"]["battery_cos"] = svae_model.monitors(x)["battery_cos"]
    runs["codebook"] = codebook_report(svae_model, setup["calibration"])
    return {"preset": setup["preset"], "recipe": recipe, "seed": seed, **runs}


def cv(epochs: int, steps: int, batch: int, seed: int) -> dict[str, Any]:
    recipe = {"epochs": epochs, "steps_per_epoch": steps, "batch_size": batch, "eval_per_type": 8}
    runs: dict[str, Any] = {"recipe": recipe, "seed": seed}
    for preset in ("cv-battery", "cv-battery-nocv"):
        model = build(preset, seed=seed)
        start = time.perf_counter()
        trainer = train(model, preset, recipe, seed)
        last = trainer.history[-1]
        runs[preset] = {
            "parameters": _n_params(model),
            "seconds": time.perf_counter() - start,
            "validation_mse": last["mse"],
            "cv": last["cv"],
            "cv_sd": last["cv_sd"],
            "cv_uniform": last["cv_uniform"],
            "kl": last["kl"],
            "history": [
                {k: h[k] for k in ("epoch", "mse", "cv", "cv_sd", "kl", "cv_weight")}
                for h in trainer.history
            ],
            "codebook": codebook_report(model, "sixteen_noise", n=64, size=32),
        }
    return runs


def figure(out: Path, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    init = 0.2 * torch.sigmoid(torch.tensor(-2.0)).item()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for ax, name, title in (
        (axes[0], "svae-text", "MiniLM token states"),
        (axes[1], "svae-image", "16² shape patches"),
    ):
        history = json.loads((out / f"{name}.json").read_text())["svae_transformer"]["history"]
        n_layers = len(history[0]["alpha"])
        for layer in range(n_layers):
            alphas = torch.tensor([h["alpha"][layer] for h in history])  # (epochs, modes)
            epochs = range(1, len(history) + 1)
            label = "battery cross-attention" if layer == 0 else f"stack layer {layer}"
            ax.plot([0, *epochs], [init, *alphas.mean(dim=1).tolist()], marker="o", label=label)
            ax.fill_between(epochs, alphas.min(dim=1).values, alphas.max(dim=1).values, alpha=0.15)
        ax.axhline(init, color="grey", lw=0.8, ls="--")
        ax.set(title=title, xlabel="epoch", ylabel="α (mean; band: min–max over modes)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["svae-text", "svae-image", "cv", "figure"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--out", type=Path, default=Path("experiments/out/producers_ii"))
    parser.add_argument("--figure", type=Path, default=Path("docs/figures/svae_alpha.png"))
    args = parser.parse_args()
    if args.what == "figure":
        figure(args.out, args.figure)
        return
    start = time.perf_counter()
    if args.what == "cv":
        doc = cv(args.epochs, args.steps, args.batch, args.seed)
    else:
        setup = TEXT if args.what == "svae-text" else IMAGE
        doc = svae(setup, args.epochs, args.steps, args.batch, args.seed)
    doc["environment"] = {
        "device": "cpu",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": date.today().isoformat(),
        "wall_seconds": time.perf_counter() - start,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.what}.json").write_text(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
