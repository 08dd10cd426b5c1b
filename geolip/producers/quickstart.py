"""The main job: train a small h2-class sphere-solver on the noise curriculum, extract its
codebook with the i.i.d. null and both controls, save the artifact and a picture.

Every step is a public function: :class:`Trainer`, :func:`extract_codebook`,
:meth:`Codebook.save`, :func:`plot_angle_histogram`. Sized for ≤ 3 minutes on 2 CPU cores.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from geolip.codebook import Codebook
from geolip.codebook.plot import plot_angle_histogram
from geolip.producers.extract import extract_codebook
from geolip.producers.sphere_solver import SphereSolver
from geolip.producers.train import Trainer, train_config

QUICKSTART_TRAINING: dict[str, Any] = {
    "batch_size": 32,
    "img_size": 32,
    "epochs": 2,
    "steps_per_epoch": 300,
    "eval_per_type": 8,
    "save_every": 100,
    "noises": None,  # the 16-noise curriculum (TRAINING_NOISES)
}


@dataclass(frozen=True)
class QuickstartResult:
    """What the quickstart made and where it put it."""

    codebook: Codebook
    codebook_path: Path
    picture_path: Path
    checkpoint_path: Path
    history: list[dict[str, Any]]


def run_quickstart(
    out_dir: str | Path = "geolip-quickstart",
    seed: int = 0,
    progress: bool = True,
    **training: Any,
) -> QuickstartResult:
    """Train, extract, measure, save. ``training`` overrides :data:`QUICKSTART_TRAINING`."""
    from geolip.producers.noise import TRAINING_NOISES

    out = Path(out_dir)
    settings = {**QUICKSTART_TRAINING, **training}
    settings["noises"] = settings["noises"] or TRAINING_NOISES
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SphereSolver.from_preset("h2")
    config = train_config("h2", seed=seed, **settings)
    trainer = Trainer(model, config, out / "checkpoints")
    history = trainer.fit(progress=progress)
    codebook = extract_codebook(
        model, "sixteen_noise", n=64, seed=seed, size=64, name="quickstart-h2", progress=progress
    )
    codebook_path = out / "codebook"
    codebook.save(codebook_path)
    picture = plot_angle_histogram(codebook, out / "codebook-angles.png", seed=seed)
    return QuickstartResult(codebook, codebook_path, picture, out / "checkpoints" / "best", history)
