"""Sphere-solver training step on one GPU, per SVD route, against the model without its SVD.

Configuration (issue 4): Freckles geometry (V=48, D=4, ps=4, hidden 384, depth 4, n_cross 2),
batch 256 of 64×64, bf16 autocast, Adam, cross-attention clipping — geolip's Trainer step on a
fixed pre-generated 16-noise batch, so the model step is timed, not noise generation (one row
also times the full step with fresh noise). Routes: the fused kernels, the float64 eigh route,
chunked gesvda, and "no SVD": the same model with U := M, S := column norms of M, Vt := I (the
cross-attention and decoder still run), the speed limit of any SVD. "+compile": encoder and
decoder under torch.compile, the SVD and attention eager. "+CUDA graph": the whole optimisation
step captured once and replayed.

Usage: python benchmarks/bench_train.py [--steps N] [--no-doc]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

import torch
from svd_paths import ROUTES
from timing import close_provenance, display_path, provenance, write_section

from geolip.data.noise import mixed_batch
from geolip.producers.presets import get_preset, train_config
from geolip.producers.sphere_solver import SphereSolver
from geolip.producers.train import Trainer


class RoutedSolver(SphereSolver):
    """A SphereSolver whose SVD runs through a named benchmark route (or none at all)."""

    route = "fused"

    def _spectral(self, M: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.route == "none":
            eye = torch.eye(M.shape[-1], device=M.device, dtype=M.dtype)
            return M, M.norm(dim=-2), eye.expand(*M.shape[:-2], -1, -1)
        u, s, vt = ROUTES[self.route](M.flatten(0, 1))
        return (
            u.unflatten(0, M.shape[:2]),
            s.unflatten(0, M.shape[:2]),
            vt.unflatten(0, M.shape[:2]),
        )


class FixedBatchTrainer(Trainer):
    """The Trainer's step on one pre-generated batch."""

    fixed: torch.Tensor | None = None

    def _batch(self) -> torch.Tensor:
        return super()._batch() if self.fixed is None else self.fixed


def fresh_step_synchronisations() -> str:
    """Whether one Trainer step on fresh noise (types drawn on the host) waits for the GPU:
    "none", or the first synchronising call CUDA's sync debug mode caught."""
    model = RoutedSolver(get_preset("freckles").model, preset="freckles")
    config = train_config("freckles", epochs=1, steps_per_epoch=4)
    trainer = FixedBatchTrainer(model, config, Path("/tmp/bench_train"), device="cuda")
    trainer.train_step()  # lazy initialisation (Adam state, cuBLAS handles) may synchronise
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        trainer.train_step()
        return "none"
    except RuntimeError as err:
        here = [f for f in traceback.extract_tb(err.__traceback__) if "geolip" in f.filename]
        where = "; ".join(f"{Path(f.filename).name}:{f.lineno} {f.line}" for f in here[-3:])
        return f"synchronises: {str(err).splitlines()[0][:80]} at {where}"
    finally:
        torch.cuda.set_sync_debug_mode("default")


def images_per_s(route: str, compiled: bool, noise: str, steps: int) -> float:
    """Images/s of the step; ``noise``: "fixed" (one pre-generated batch), "host" (fresh
    noise, types drawn on the host: no synchronisation) or "device" (fresh noise, types drawn
    on the GPU, whose per-type counts the host must read)."""
    torch.manual_seed(0)
    model = RoutedSolver(get_preset("freckles").model, preset="freckles")
    model.route = route
    if compiled:
        model._encode = torch.compile(model._encode)
        model._decode = torch.compile(model._decode)
    config = train_config("freckles", epochs=1, steps_per_epoch=steps)
    trainer = FixedBatchTrainer(model, config, Path("/tmp/bench_train"), device="cuda")
    if noise == "device":
        trainer.label_gen = None
    if noise == "fixed":
        gen = torch.Generator(device="cuda").manual_seed(0)
        trainer.fixed, _ = mixed_batch(256, 64, generator=gen, device="cuda")
    for _ in range(10 if not compiled else 25):
        trainer.train_step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
    torch.cuda.synchronize()
    return steps * config.batch_size / (time.perf_counter() - start)


def _training_state(trainer: Trainer) -> list[torch.Tensor]:
    """Every tensor the optimisation step updates in place: parameters and Adam's state."""
    params = list(trainer.model.parameters())
    moments = [t for p in params for t in trainer.optimizer.state[p].values()]
    return params + [t for t in moments if isinstance(t, torch.Tensor)]


def graphed_images_per_s(route: str, steps: int) -> float:
    """The same step on the fixed batch, captured once in a CUDA graph (forward, backward,
    clipping, Adam with ``capturable=True``) and replayed: no per-launch host overhead.

    Before timing, one replay is checked against one eager step from the same parameters and
    Adam state (restored in place): the two losses must agree to 1e-3 relative."""
    torch.manual_seed(0)
    model = RoutedSolver(get_preset("freckles").model, preset="freckles")
    model.route = route
    config = train_config("freckles", epochs=1, steps_per_epoch=steps)
    trainer = FixedBatchTrainer(model, config, Path("/tmp/bench_train"), device="cuda")
    for group in trainer.optimizer.param_groups:
        group["capturable"] = True
    gen = torch.Generator(device="cuda").manual_seed(0)
    batch, _ = mixed_batch(256, 64, generator=gen, device="cuda")
    trainer.model.train()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up off the default stream, as capture requires
        for _ in range(10):
            trainer.optimisation_step(batch)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    trainer.optimizer.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        loss = trainer.optimisation_step(batch)

    state = _training_state(trainer)
    saved = [t.clone() for t in state]
    graph.replay()
    replayed = loss.item()
    with torch.no_grad():
        for t, s in zip(state, saved, strict=True):
            t.copy_(s)
    eager = trainer.optimisation_step(batch).item()
    if not abs(replayed - eager) <= 1e-3 * abs(eager):
        raise RuntimeError(f"graphed {route} step: loss {replayed:.6g} vs eager {eager:.6g}")

    for _ in range(5):
        graph.replay()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        graph.replay()
    torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    if not torch.isfinite(loss):
        raise RuntimeError(f"graphed {route} step gave a non-finite loss")
    return steps * config.batch_size / elapsed


VARIANTS = [  # (label, route, compiled, noise)
    ("fused", "fused", False, "fixed"),
    ("fused + compile", "fused", True, "fixed"),
    ("eigh (float64, chunked)", "eigh", False, "fixed"),
    ("gesvda (chunked)", "gesvda", False, "fixed"),
    ("no SVD", "none", False, "fixed"),
    ("no SVD + compile", "none", True, "fixed"),
    ("fused, fresh noise every step", "fused", False, "host"),
    ("fused, fresh noise, types drawn on the GPU", "fused", False, "device"),
    ("fused + compile, fresh noise every step", "fused", True, "host"),
]
GRAPHED = [("fused + CUDA graph", "fused"), ("no SVD + CUDA graph", "none")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--no-doc", action="store_true")
    parser.add_argument("--json", default=None)
    parser.add_argument("--only", default=None, help="variant labels separated by ';' (no doc)")
    args = parser.parse_args()
    wanted = None if args.only is None else set(args.only.split(";"))
    if not torch.cuda.is_available():
        sys.exit("bench_train needs a CUDA GPU")
    torch.backends.cuda.matmul.allow_tf32 = True
    prov = provenance(device=torch.cuda.get_device_name(0))
    results = {}
    for label, route, compiled, noise in VARIANTS:
        if wanted is not None and label not in wanted:
            continue
        try:
            results[label] = images_per_s(route, compiled, noise, args.steps)
        except Exception as err:  # a failed variant is reported, not hidden
            results[label] = f"failed: {type(err).__name__}: {str(err)[:100]}"
        print(label, results[label], flush=True)
    for label, route in GRAPHED:
        if wanted is not None and label not in wanted:
            continue
        try:
            results[label] = graphed_images_per_s(route, args.steps)
        except Exception as err:  # a failed variant is reported, not hidden
            results[label] = f"failed: {type(err).__name__}: {str(err)[:100]}"
        print(label, results[label], flush=True)
    syncs = fresh_step_synchronisations()
    print("synchronisations in a fresh-noise step:", syncs, flush=True)
    if args.json:
        data = {
            "provenance": close_provenance(prov),
            "images_per_s": results,
            "fresh_step_synchronisations": syncs,
        }
        Path(args.json).write_text(json.dumps(data, indent=2))
    if args.no_doc or args.only:  # the doc table holds full runs only
        return
    best_none = max(
        v for k, v in results.items() if k.startswith("no SVD") and isinstance(v, float)
    )
    base = results["eigh (float64, chunked)"]
    rows = []
    for label, value in results.items():
        if not isinstance(value, float):
            rows.append([label, value, "", ""])
            continue
        rows.append(
            [
                label,
                f"{value:,.0f}",
                f"{value / base:.2f}×" if isinstance(base, float) else "",
                f"{value / best_none:.2f}",
            ]
        )
    notes = f"""
Images per second of geolip's Trainer step (Freckles preset, batch 256 of 64×64, bf16 autocast,
Adam, cross-attention clipping; {args.steps} timed steps after warm-up, synchronised). "vs eigh":
over the float64 Gram + eigh route, the exact route before the fused kernels. "of no-SVD": over
the fastest model without the SVD (U := M, S := column norms, Vt := I).
"""
    print(
        write_section(
            "train",
            "Sphere-solver training step on the GPU",
            ["variant", "images/s", "vs eigh", "of no-SVD"],
            rows,
            notes,
            prov=prov,
            raw=display_path(args.json) if args.json else None,
        )
    )


if __name__ == "__main__":
    main()
