"""Train h2 producers at other seeds with the recipe of pretrained:h2-gaussian, for the OMEGA §4
cross-model prediction (two producers trained on the same data) in docs/vocabulary.md.

Usage: python experiments/vocabulary_producers.py OUT_DIR [--seeds 1 2] [--device cuda]

Recipe (as experiments/train_producers.py gives h2-gaussian): preset h2, gaussian noise only,
3 epochs × 500 steps, batch 128, 64 × 64, lr 1e-3 cosine; each run starts from its seed.
Writes OUT_DIR/h2-seedS/ (the best checkpoint: config.json + model.safetensors, loadable with
load_producer) and OUT_DIR/log.json (wall time and validation MSE per epoch).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import torch

from geolip.producers.presets import train_preset


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    log = {"device": device_name, "torch": torch.__version__, "date": time.strftime("%Y-%m-%d")}
    runs = {}
    with tempfile.TemporaryDirectory() as work:
        for seed in args.seeds:
            name = f"h2-seed{seed}"
            start = time.perf_counter()
            trainer = train_preset(
                "h2",
                Path(work) / name,
                seed=seed,
                device=args.device,
                progress=False,
                epochs=3,
                steps_per_epoch=500,
                noises=("gaussian",),
            )
            seconds = time.perf_counter() - start
            (args.out / name).mkdir()
            for file in ("config.json", "model.safetensors"):
                shutil.copy(Path(work) / name / "best" / file, args.out / name / file)
            runs[name] = {
                "seconds": seconds,
                "best_mse": trainer.best_mse,
                "history": trainer.history,
            }
            print(f"{name}: {seconds:.0f} s, best mse {trainer.best_mse:.3e}", flush=True)
    log["runs"] = runs
    (args.out / "log.json").write_text(json.dumps(log, indent=2) + "\n")


if __name__ == "__main__":
    main()
