"""Train the shipped producers and the svd-vs-bypass control on one GPU (device tool).

Usage: python experiments/train_producers.py OUT_DIR [--minutes-freckles M] [--steps-h2 N]
       [--device cuda]

Writes, flat under OUT_DIR (so the device tool can bring them back):
  h2-gaussian.model.safetensors / .config.json       gaussian-trained h2 battery (57,215 params)
  freckles.model.safetensors / .config.json          Freckles preset on the 16-noise curriculum
  freckles-bypass.model.safetensors / .config.json   same budget, decoder reads M (no SVD)
  log.json                                           recipes, throughput, per-epoch metrics
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

from geolip.producers.presets import build, train_config
from geolip.producers.sphere_solver import SphereSolver
from geolip.producers.train import Trainer


def _measure_rate(model: SphereSolver, preset: str, device: str, **overrides) -> float:
    """Images per second of the training step (30 steps after 5 warm-up)."""
    trainer = Trainer(model, train_config(preset, **overrides), "/tmp/rate", device=device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for _ in range(5):
        trainer.train_step()
    sync()
    start = time.perf_counter()
    for _ in range(30):
        trainer.train_step()
    sync()
    return 30 * trainer.config.batch_size / (time.perf_counter() - start)


def _train(name: str, preset: str, out: Path, device: str, model_overrides: dict, **recipe) -> dict:
    torch.manual_seed(0)
    model = build(preset, **model_overrides)
    rate = _measure_rate(build(preset, **model_overrides), preset, device, **recipe)
    config = train_config(preset, **recipe)
    run_dir = Path("/tmp/runs") / name
    start = time.perf_counter()
    history = Trainer(model, config, run_dir, device=device).fit(progress=False)
    seconds = time.perf_counter() - start
    shutil.copy(run_dir / "best" / "model.safetensors", out / f"{name}.model.safetensors")
    shutil.copy(run_dir / "best" / "config.json", out / f"{name}.config.json")
    print(
        f"{name}: {seconds:.0f} s, {rate:.0f} img/s, final mse {history[-1]['mse']:.3e}", flush=True
    )
    return {
        "preset": preset,
        "model_overrides": model_overrides,
        "recipe": config.model_dump(),
        "params": model.param_count(),
        "seconds": seconds,
        "images_per_s": rate,
        "history": history,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--minutes-freckles", type=float, default=3.0)
    parser.add_argument("--steps-h2", type=int, default=1500)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    device = args.device
    torch.backends.cuda.matmul.allow_tf32 = True
    name = torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"
    log: dict = {
        "device": name,
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
        "runs": {},
    }
    log["runs"]["h2-gaussian"] = _train(
        "h2-gaussian",
        "h2",
        args.out,
        device,
        {},
        epochs=3,
        steps_per_epoch=args.steps_h2 // 3,
        noises=("gaussian",),
    )
    probe = _measure_rate(build("freckles"), "freckles", device, epochs=1, steps_per_epoch=1)
    steps = int(args.minutes_freckles * 60 * probe / 256)
    epochs = 8
    for name, overrides in (("freckles", {}), ("freckles-bypass", {"readout": "bypass"})):
        log["runs"][name] = _train(
            name,
            "freckles",
            args.out,
            device,
            overrides,
            epochs=epochs,
            steps_per_epoch=max(1, steps // epochs),
        )
        (args.out / "log.json").write_text(json.dumps(log, indent=2))
    (args.out / "log.json").write_text(json.dumps(log, indent=2))


if __name__ == "__main__":
    main()
