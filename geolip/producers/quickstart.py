"""The main job: train a small h2-class sphere-solver on the noise curriculum, extract its
codebook with the i.i.d. null and both controls, save the artifact and a picture.

Every step is a public function: :func:`train_preset`, :func:`extract_codebook`,
:meth:`Codebook.save`, :func:`plot_angle_histogram`. Sized for ≤ 3 minutes on 2 CPU cores.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geolip.codebook import Codebook
from geolip.codebook.plot import plot_angle_histogram
from geolip.data.noise import TRAINING_NOISES
from geolip.producers.extract import extract_codebook
from geolip.producers.presets import train_preset

QUICKSTART_TRAINING: dict[str, Any] = {
    "batch_size": 32,
    "img_size": 32,
    "epochs": 2,
    "steps_per_epoch": 300,
    "eval_per_type": 8,
    "save_every": 100,
    "noises": None,  # the 16-noise curriculum (TRAINING_NOISES)
}

OUTPUTS = ("checkpoints", "codebook", "codebook-angles.png")
"""What :func:`run_quickstart` writes in its folder."""


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
    force: bool = False,
    **training: Any,
) -> QuickstartResult:
    """Train, extract, measure, save. ``training`` overrides :data:`QUICKSTART_TRAINING`.

    A non-empty ``out_dir`` is refused (FileExistsError) before anything is trained, unless
    ``force``: then what a quickstart writes there (``checkpoints/``, ``codebook/``,
    ``codebook-angles.png``) is removed first and written anew; other files are left alone.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out}: is a file, but the quickstart writes a folder")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise FileExistsError(f"{out}: already exists and is not empty; pass force=True")
        for name in OUTPUTS:
            target = out / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
    settings = {**QUICKSTART_TRAINING, **training}
    settings["noises"] = settings["noises"] or TRAINING_NOISES
    trainer = train_preset("h2", out / "checkpoints", seed=seed, progress=progress, **settings)
    codebook = extract_codebook(
        trainer.model,
        "sixteen_noise",
        n=64,
        seed=seed,
        size=64,
        name="quickstart-h2",
        progress=progress,
    )
    codebook_path = out / "codebook"
    codebook.save(codebook_path)
    picture = plot_angle_histogram(codebook, out / "codebook-angles.png", seed=seed)
    checkpoint = out / "checkpoints" / "best"
    return QuickstartResult(codebook, codebook_path, picture, checkpoint, trainer.history)
