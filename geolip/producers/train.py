"""One trainer for every producer: Adam + cosine schedule, noise curriculum, exact resume, DDP.

Recipe (spec §A.10): Adam (no weight decay) at the preset's lr, CosineAnnealingLR(T_max=epochs)
stepped once per epoch, loss = MSE(recon, x), gradient clipping at 0.5 on the cross-attention
parameters only. The upstream "soft hand" is available as ``cv_proximity_reweighting``: it
multiplies the MSE by (1 + 0.5·prox) with prox = exp(-(cv - target)²/(2·0.15²)) measured without
gradient every 50 steps — a loss reweighting, not a geometric force (spec §C.3, H.4). Off by
default. Under ``torchrun`` the model is wrapped in DistributedDataParallel (gloo on CPU, NCCL
on CUDA); each rank draws its own data stream and rank 0 evaluates and writes checkpoints.

A model that draws its own regression targets from labelled images (a
:class:`~geolip.producers.contract.TargetRegressor`, e.g. GLFM's flow matching) trains through
the same loop, checkpoints and resume: ``TrainConfig.dataset`` names the images (a dataset
SPEC, resized to ``img_size``; the last ``eval_per_type`` × classes images are held out for
validation), each step draws a batch and the model's (inputs, target) pair from the data
generator, the loss is MSE(model(*inputs), target), and the model's validation metrics replace
the autoencoder's (their ``mse`` picks ``best/``).

An autoencoder may reconstruct a dataset instead of noise (``dataset`` set; ``img_size`` None
keeps the dataset's own size, e.g. token sequences (1, T, F)): validation is then its held-out
part. Three optional hooks of :mod:`geolip.producers.contract` let a model shape its own
training without a trainer of its own: ``aux_loss`` in its forward output (extra loss terms:
a KL, a geometric loss, an internal reconstruction), ``parameter_groups(lr)`` (optimiser groups
at their own rates) and ``start_epoch(epoch)`` (loss phases); ``monitors(x)`` adds its own
statistics to each epoch's metrics.
"""

from __future__ import annotations

import gc
import json
import math
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, Literal

import torch
import torch.distributed as dist
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from torch.optim.lr_scheduler import LRScheduler

from geolip.data.dataset import ImageDataset
from geolip.data.noise import TRAINING_NOISES, mixed_batch, noise_batch
from geolip.data.specs import DatasetSpec, open_dataset
from geolip.errors import DatasetError, TrainingInterrupted
from geolip.producers.checkpoint import TrainingState, load_checkpoint, save_checkpoint
from geolip.producers.contract import (
    GroupedParameters,
    Monitored,
    Phased,
    TargetRegressor,
    Trainable,
)
from geolip.solvers.metrics import effective_rank, pentachoron_cv
from geolip.solvers.null import row_spectrum_null

SOFT_HAND_EVERY = 50
SOFT_HAND_SIGMA = 0.15
SOFT_HAND_BOOST = 0.5
LOSS_SHOWN_EVERY = 25
"""Steps between the progress bar's loss reads: each read waits for the device."""


class TrainConfig(BaseModel):
    """How to train a producer. Each preset's recipe lives in ``geolip.producers.presets``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    batch_size: int = Field(ge=1)
    lr: float = Field(gt=0)
    epochs: int = Field(ge=1)
    steps_per_epoch: int = Field(ge=1)
    img_size: int | None = Field(
        default=64, ge=1, description="image side; None: the dataset's own size (needs dataset)"
    )
    noises: tuple[str, ...] = TRAINING_NOISES
    faithful_noise: bool = False
    seed: int = 0
    cv_proximity_reweighting: bool = False
    cv_target: float | None = None
    cross_attn_clip: float = 0.5
    eval_per_type: int = Field(default=32, ge=1)
    save_every: int = Field(default=0, ge=0, description="steps between rolling checkpoints")
    amp: bool = Field(default=True, description="bf16 autocast on CUDA (ignored on CPU)")
    lr_schedule: Literal["cosine-epochs", "warmup-cosine"] = Field(
        default="cosine-epochs",
        description="cosine-epochs: CosineAnnealingLR(T_max=epochs) stepped once an epoch; "
        "warmup-cosine: per step, linear warm-up over warmup_steps then a cosine to 0 at the "
        "last step",
    )
    warmup_steps: int = Field(default=0, ge=0, description="linear warm-up (warmup-cosine only)")
    dataset: str | None = Field(
        default=None,
        description="a dataset SPEC: the labelled images of a model that draws its own "
        "targets, or what an autoencoder reconstructs; unset: the noise curriculum",
    )

    @model_validator(mode="after")
    def _size_known(self) -> TrainConfig:
        if self.img_size is None and self.dataset is None:
            raise ValueError("img_size None (the dataset's own size) needs a dataset")
        return self

    @field_validator("dataset")
    @classmethod
    def _dataset_spec(cls, spec: str | None) -> str | None:
        if spec is not None:
            try:
                DatasetSpec.parse(spec)
            except DatasetError as err:
                raise ValueError(err.problem) from None
        return spec

    @field_validator("noises")
    @classmethod
    def _known_noises(cls, noises: tuple[str, ...]) -> tuple[str, ...]:
        if not noises:
            raise ValueError("needs at least one noise")
        unknown = [n for n in noises if n not in TRAINING_NOISES]
        if unknown:
            raise ValueError(
                f"unknown training noise {', '.join(map(repr, unknown))}; "
                f"expected names from {', '.join(TRAINING_NOISES)}"
            )
        return noises


def _schedule(optimizer: torch.optim.Optimizer, config: TrainConfig) -> LRScheduler:
    """The lr schedule of ``config.lr_schedule``; a warmup-cosine one is stepped every step
    (its lambda reads the config, so a resume with more epochs follows the longer cosine)."""
    if config.lr_schedule == "cosine-epochs":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _warmup_cosine(step, config))


def _warmup_cosine(step: int, config: TrainConfig) -> float:
    """The lr factor at ``step``: (step + 1)/warmup during warm-up, then ½(1 + cos πu) with u
    the fraction of the remaining steps done (1 at the first step after warm-up, 0 at the end)."""
    total = config.epochs * config.steps_per_epoch
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    u = (step - config.warmup_steps) / max(1, total - config.warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * min(u, 1.0)))


def _stream_device(states: torch.Tensor) -> str:
    """The device type of saved generator states (rows of bytes) in a checkpoint that does not
    name it: a CPU generator's Mersenne Twister state is 5,056 bytes, a CUDA one's 16."""
    return "cpu" if states.shape[-1] == torch.Generator().get_state().numel() else "cuda"


def _rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def cross_attention_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """Parameters under ``cross_attn`` (the only ones upstream clips)."""
    return [p for name, p in _unwrap(model).named_parameters() if name.startswith("cross_attn")]


class Trainer:
    """Trains ``model`` on noise, evaluates each epoch and checkpoints into ``out_dir``.

    Checkpoints: ``latest/`` every ``save_every`` steps and at every epoch end, ``best/`` on
    validation MSE. ``Trainer(..., resume=True)`` continues from ``latest/`` exactly: model,
    optimizer, scheduler position, step counters and every RNG state are restored, so on the CPU
    an interrupted-then-resumed run equals the uninterrupted one bit for bit.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        config: TrainConfig,
        out_dir: str | Path,
        device: str | torch.device = "cpu",
        resume: bool = False,
    ) -> None:
        self.regressor = isinstance(model, TargetRegressor)
        if not self.regressor and not isinstance(model, Trainable):
            raise TypeError(
                f"{type(model).__name__} cannot be trained here: the Trainer needs forward() → "
                "recon, S, S_orig, attention_alphas() and pretrained_config(), or "
                "training_pair(), check_batch() and validation_metrics()"
            )
        if self.regressor and config.dataset is None:
            raise ValueError(
                f"{type(model).__name__} draws its own targets from labelled images: set dataset "
                "(a dataset SPEC such as 'shapes:n=2000,size=32')"
            )
        self.config = config
        self.out_dir = Path(out_dir)
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.distributed = dist.is_available() and dist.is_initialized()
        self.rank = _rank()
        # fused Adam on CUDA: one kernel for every parameter instead of a few per tensor
        fused = self.device.type == "cuda"
        groups = (
            model.parameter_groups(config.lr)
            if isinstance(model, GroupedParameters)
            else self.model.parameters()
        )
        self.optimizer = torch.optim.Adam(groups, lr=config.lr, fused=fused)
        self.scheduler = _schedule(self.optimizer, config)
        self.data_gen = torch.Generator(device=self.device)
        self.data_gen.manual_seed(config.seed * 1000 + self.rank)
        # noise types are drawn on the host so a GPU batch is built without a synchronisation;
        # on the CPU the one data generator serves both, as it always has
        self.label_gen = self.data_gen
        if self.device.type != "cpu":
            self.label_gen = torch.Generator().manual_seed(config.seed * 1000 + self.rank)
        self.train_images: ImageDataset | None = None
        if config.dataset is not None:
            self.train_images, self.validation = _labelled_split(config, self.device)
        if self.regressor:
            _check_every_label(model, self.validation, self.train_images.labels)
        self.step = 0
        self.epoch = 0
        self.best_mse = math.inf
        self.history: list[dict[str, Any]] = []
        self._cv: float | None = None
        self._interrupted = False
        self._hard_stop = False
        if resume:
            self._restore(self.out_dir / "latest")
        if self.distributed:
            self.model = torch.nn.parallel.DistributedDataParallel(self.model)

    # ---------------------------------------------------------------------------- state
    def _state(self, metrics: dict[str, Any] | None) -> TrainingState:
        rng = {"cpu": torch.get_rng_state(), "data": self._gathered_state(self.data_gen)}
        if self.label_gen is not self.data_gen:
            rng["labels"] = self._gathered_state(self.label_gen)
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        model = _unwrap(self.model)
        return TrainingState(
            model=model.state_dict(),
            optimizer=self.optimizer.state_dict(),
            rng=rng,
            config={
                **model.pretrained_config(),  # model_class, its config: the loader reads it
                "train": self.config.model_dump(mode="json"),
                "scheduler": self.scheduler.state_dict(),
                "step": self.step,
                "epoch": self.epoch,
                "data_device": self.data_gen.device.type,
                "best_mse": None if math.isinf(self.best_mse) else self.best_mse,
                "metrics": metrics,
                "history": self.history,
            },
        )

    def _gathered_state(self, generator: torch.Generator) -> torch.Tensor:
        """(world size, state bytes): every rank's state of its ``generator``."""
        state = generator.get_state().to(self.device if self.distributed else "cpu")
        if not self.distributed:
            return state.cpu().unsqueeze(0)
        parts = [torch.empty_like(state) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, state)
        return torch.stack(parts).cpu()

    def _restore(self, path: Path) -> None:
        state = load_checkpoint(path)
        # a checkpoint from before a field existed holds that field's default
        fields = TrainConfig.model_fields.items()
        defaults = json.loads(json.dumps({k: f.default for k, f in fields if not f.is_required()}))
        saved = {**defaults, **(state.config.get("train") or {})}
        wanted = self.config.model_dump(mode="json")
        changed = [
            k for k in sorted({*saved, *wanted}) if k != "epochs" and saved.get(k) != wanted.get(k)
        ]
        if changed:
            fields = ", ".join(f"{k}: {saved.get(k)!r} → {wanted.get(k)!r}" for k in changed)
            raise ValueError(
                f"{path}: train config differs from the checkpoint's ({fields}); not resuming "
                "(only --epochs may change on resume)"
            )
        if self.config.epochs < state.config["epoch"]:
            raise ValueError(
                f"{path}: the run already completed {state.config['epoch']} epochs; "
                f"epochs={self.config.epochs} would cut it short; not resuming"
            )
        _unwrap(self.model).load_state_dict(state.model)
        self.optimizer.load_state_dict(state.optimizer)
        for group in self.optimizer.param_groups:  # the implementation is this device's
            group["fused"] = self.device.type == "cuda"
        self.step, self.epoch = state.config["step"], state.config["epoch"]
        best = state.config["best_mse"]
        self.best_mse = math.inf if best is None else best
        self.history = state.config["history"]
        self.scheduler.load_state_dict(state.config["scheduler"])
        if saved.get("epochs") != self.config.epochs:
            self._retarget_schedule()
        torch.set_rng_state(state.rng["cpu"])
        if "cuda" in state.rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(state.rng["cuda"], self.device)
        # one saved stream per rank of the run that wrote it: a rank beyond that run's world
        # size keeps its fresh seeded stream, so resuming on more (or fewer) processes, or on
        # another device type, is deterministic too
        saved_streams = state.rng["data"]
        same_kind = state.config.get("data_device", _stream_device(saved_streams)) == (
            self.data_gen.device.type
        )
        if self.rank < len(saved_streams) and same_kind:
            self.data_gen.set_state(saved_streams[self.rank].to(self.data_gen.device))
        labels = state.rng.get("labels")
        if labels is not None and self.label_gen is not self.data_gen and self.rank < len(labels):
            self.label_gen.set_state(labels[self.rank])

    def _retarget_schedule(self) -> None:
        """Resume with another ``epochs``: the rest of the run follows the cosine of the new
        length from the point reached (the lr jumps onto that curve; the steps already run
        keep the lr they had, so the run is not the one a fresh ``epochs`` run would be)."""
        t = self.scheduler.last_epoch
        bases = self.scheduler.base_lrs
        if isinstance(self.scheduler, torch.optim.lr_scheduler.CosineAnnealingLR):
            self.scheduler.T_max = total = self.config.epochs
            eta = self.scheduler.eta_min
            lrs = [eta + (b - eta) * (1 + math.cos(math.pi * t / total)) / 2 for b in bases]
        else:
            lrs = [b * _warmup_cosine(t, self.config) for b in bases]
        for group, lr in zip(self.optimizer.param_groups, lrs, strict=True):
            group["lr"] = lr
        self.scheduler._last_lr = lrs

    def _save(self, name: str, metrics: dict[str, Any] | None = None) -> None:
        state = self._state(metrics)  # every rank joins the all_gather
        if self.rank == 0:
            save_checkpoint(self.out_dir / name, state)

    # ----------------------------------------------------------------------------- steps
    def _batch(self) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if self.train_images is not None:
            n, size = len(self.train_images), (self.config.batch_size,)
            idx = torch.randint(n, size, generator=self.data_gen, device=self.device).cpu()
            x = self.train_images.batch(idx).to(self.device)
            return (x, self.train_images.labels[idx].to(self.device)) if self.regressor else x
        x, _ = mixed_batch(
            self.config.batch_size,
            self.config.img_size,
            kinds=self.config.noises,
            generator=self.data_gen,
            device=self.device,
            faithful=self.config.faithful_noise,
            label_generator=self.label_gen,
        )
        return x

    def _loss(self, batch: torch.Tensor | tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        amp = self.config.amp and self.device.type == "cuda"
        if isinstance(batch, tuple):
            inputs, target = _unwrap(self.model).training_pair(*batch, self.data_gen)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=amp):
                prediction = self.model(*inputs)  # through DDP when it wraps the model
            return torch.nn.functional.mse_loss(prediction.float(), target)
        x = batch
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=amp):
            out = self.model(x)
            recon = torch.nn.functional.mse_loss(out["recon"].float(), x)
        extra = out["aux_loss"].float() if "aux_loss" in out else 0.0  # the model's own terms
        if not self.config.cv_proximity_reweighting:
            return recon + extra
        if self.step % SOFT_HAND_EVERY == 0:
            cv = pentachoron_cv(out["M"][0, 0].detach().double().cpu())
            if math.isfinite(cv) and cv > 0:
                self._cv = cv
        if self._cv is None:
            return recon + extra
        target = self.config.cv_target if self.config.cv_target is not None else self._cv
        prox = math.exp(-((self._cv - target) ** 2) / (2 * SOFT_HAND_SIGMA**2))
        return (1 + SOFT_HAND_BOOST * prox) * recon + extra

    def train_step(self) -> torch.Tensor:
        """One optimisation step on a fresh batch, the per-step lr schedule stepped.

        Returns:
            the loss, a detached 0-dim tensor on the training device. Nothing here waits for
            the device; ``.item()`` on it does.
        """
        self.model.train()
        loss = self.optimisation_step(self._batch())
        self.step += 1
        if self.config.lr_schedule != "cosine-epochs":
            self.scheduler.step()
        return loss

    def optimisation_step(
        self, batch: torch.Tensor | tuple[torch.Tensor, torch.Tensor]
    ) -> torch.Tensor:
        """Loss, backward, cross-attention clipping and the Adam step on the batch (images x,
        or (x, labels) for a target regressor); returns the loss, detached. For images it never
        synchronises with the host (unless cv_proximity_reweighting is on), so it can be
        captured in a CUDA graph; the step counter is the caller's."""
        loss = self._loss(batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clipped = cross_attention_parameters(self.model)
        if clipped and self.config.cross_attn_clip > 0:
            torch.nn.utils.clip_grad_norm_(clipped, self.config.cross_attn_clip)
        self.optimizer.step()
        return loss.detach()

    # -------------------------------------------------------------------------- evaluate
    @torch.no_grad()
    def evaluate(self) -> dict[str, Any]:
        """Validation on a fixed seeded set: MSE per noise type and spectral statistics, each
        spectral statistic beside its null for V i.i.d. unit rows (``*_null_mean``/``_sd``, over
        ``null_matrices`` matrices a trial: :func:`geolip.solvers.null.row_spectrum_null`).
        An autoencoder on a dataset is validated on its held-out part (``mse_per_type`` has the
        one entry ``validation``); a :class:`~geolip.producers.contract.Monitored` model adds
        its ``monitors`` of the validation inputs. A target regressor reports its own
        ``validation_metrics`` on the held-out images, its random draws from a generator seeded
        10,000 + seed, the same every epoch."""
        model = _unwrap(self.model).eval()
        gen = torch.Generator(device=self.device).manual_seed(10_000 + self.config.seed)
        if self.regressor:
            x, labels = self.validation
            found = model.validation_metrics(x, labels, gen)
            return {"epoch": self.epoch, "step": self.step, **found}
        per_type: dict[str, float] = {}
        s_all, s_orig_all = [], []
        if self.train_images is not None:
            batches = {"validation": self.validation[0]}
        else:
            batches = {
                kind: noise_batch(
                    kind,
                    self.config.eval_per_type,
                    self.config.img_size,
                    generator=gen,
                    device=self.device,
                    faithful=self.config.faithful_noise,
                )
                for kind in self.config.noises
            }
        for kind, x in batches.items():
            out = model(x)
            per_type[kind] = torch.nn.functional.mse_loss(out["recon"].float(), x).item()
            if "S" in out:  # a plain autoencoder (a control) has no spectrum
                s_all.append(out["S"].float().flatten(0, -2))
                s_orig_all.append(out["S_orig"].float().flatten(0, -2))
                n_rows = out["M"].shape[-2]
        metrics: dict[str, Any] = {
            "epoch": self.epoch,
            "step": self.step,
            "mse": sum(per_type.values()) / len(per_type),
            "mse_per_type": per_type,
        }
        if s_all:
            s, s0 = torch.cat(s_all), torch.cat(s_orig_all)
            mean_s = s.mean(dim=0)
            # the same estimators on V i.i.d. unit rows: cached, so drawn once per run
            null = row_spectrum_null(n_rows, s.shape[-1], s.shape[0], seed=self.config.seed)
            metrics.update(
                effective_rank=effective_rank(s.double()).mean().item(),
                s0_over_sd=(mean_s[0] / mean_s[-1]).item(),
                s_delta=(s - s0).abs().mean().item(),
                **null.summary(),
            )
        metrics["alpha_mean"] = [a.mean().item() for a in model.attention_alphas()]
        if isinstance(model, Monitored):
            metrics.update(model.monitors(torch.cat(list(batches.values()))))
        return metrics

    # ------------------------------------------------------------------------------- fit
    def fit(self, progress: bool = True) -> list[dict[str, Any]]:
        """Train until ``epochs``; returns the per-epoch metrics history.

        Ctrl-C (SIGINT) is deferred to the end of the step under way; then ``latest/`` is saved
        at that step and :class:`~geolip.errors.TrainingInterrupted` (a KeyboardInterrupt) is
        raised, so ``resume=True`` continues exactly. A second Ctrl-C stops at once without
        saving. Under DDP, Ctrl-C is not intercepted (ranks would have to agree on the step):
        the run resumes from the last rolling save.
        """
        self._interrupted = False
        previous = self._intercept_sigint()
        try:
            return self._fit(progress)
        except KeyboardInterrupt as err:
            if isinstance(err, TrainingInterrupted) or self.distributed or self._hard_stop:
                raise
            self._save("latest")  # a whole step ended: the state is consistent
            raise TrainingInterrupted(
                f"training interrupted at step {self.step}; saved {self.out_dir / 'latest'}",
                self.step,
                self.epoch,
                self.out_dir / "latest",
            ) from err
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)

    def _intercept_sigint(self) -> Any:
        """Install the deferring SIGINT handler; returns the previous one (None if not ours)."""
        self._hard_stop = False
        if self.distributed or threading.current_thread() is not threading.main_thread():
            return None

        def handler(signum: int, frame: Any) -> None:
            if self._interrupted:  # the second Ctrl-C: stop now, save nothing
                self._hard_stop = True
                raise KeyboardInterrupt
            self._interrupted = True

        try:
            return signal.signal(signal.SIGINT, handler)
        except ValueError:  # not the main interpreter
            return None

    def _fit(self, progress: bool) -> list[dict[str, Any]]:
        cfg = self.config
        show = progress and self.rank == 0
        columns = (
            TextColumn("[bold]epoch {task.fields[epoch]}"),
            BarColumn(),
            TextColumn(
                "{task.completed}/{task.total} loss {task.fields[loss]:.3e} "
                "{task.fields[rate]:.0f} img/s"
            ),
            TimeRemainingColumn(),
        )
        with Progress(*columns, disable=not show, console=Console(stderr=True)) as bar:
            while self.epoch < cfg.epochs:
                if isinstance(phased := _unwrap(self.model), Phased):
                    phased.start_epoch(self.epoch)
                done = self.step - self.epoch * cfg.steps_per_epoch
                task = bar.add_task(
                    "train",
                    total=cfg.steps_per_epoch,
                    completed=done,
                    epoch=self.epoch,
                    loss=float("nan"),
                    rate=0.0,
                )
                start = time.perf_counter()
                remaining = cfg.steps_per_epoch - done
                for n_done in range(1, remaining + 1):
                    loss = self.train_step()
                    if self._interrupted:
                        raise KeyboardInterrupt
                    shown = {}
                    if n_done % LOSS_SHOWN_EVERY == 0 or n_done == remaining:
                        shown["loss"] = loss.item()  # the only host read of the loss
                    rate = cfg.batch_size * n_done / max(time.perf_counter() - start, 1e-9)
                    bar.update(task, advance=1, rate=rate, **shown)
                    if cfg.save_every and self.step % cfg.save_every == 0:
                        self._save("latest")
                self.epoch += 1
                if cfg.lr_schedule == "cosine-epochs":
                    self.scheduler.step()
                # every rank evaluates the same synchronised weights on the same fixed set, so
                # all take the same "best" decision and join the same collective saves
                metrics = self.evaluate()
                self.history.append(metrics)
                if metrics["mse"] < self.best_mse:
                    self.best_mse = metrics["mse"]
                    self._save("best", metrics)
                self._save("latest", metrics)
                bar.remove_task(task)
        return self.history


def maybe_init_distributed() -> bool:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); True if joined."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return dist.is_initialized()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend=backend)
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return True


def leave_distributed(trainer: Trainer) -> None:
    """Leave the process group that :func:`maybe_init_distributed` joined.

    The trainer's DDP wrapper goes first: its reducer holds the group, and a gloo group still
    held when the interpreter exits can abort the process after the run has finished."""
    trainer.model = _unwrap(trainer.model)
    gc.collect()
    dist.destroy_process_group()


def _labelled_split(
    config: TrainConfig, device: torch.device
) -> tuple[ImageDataset, tuple[torch.Tensor, torch.Tensor]]:
    """(training images, held-out validation (x, labels) on ``device``) of ``config.dataset``,
    at ``img_size``: the last ``eval_per_type`` × classes images are held out, at most half."""
    assert config.dataset is not None
    images = open_dataset(config.dataset)
    if config.img_size is not None and images.size != (config.img_size, config.img_size):
        images = images.resized(config.img_size)
    n_val = min(config.eval_per_type * len(images.classes), len(images) // 2)
    if n_val < 1:
        raise ValueError(
            f"dataset {config.dataset!r} has {len(images)} images: too few to hold out validation"
        )
    train, val = images.split(len(images) - n_val)
    return train, (val.images.to(device), val.labels.to(device))


def _check_every_label(
    model: TargetRegressor, validation: tuple[torch.Tensor, torch.Tensor], labels: torch.Tensor
) -> None:
    """The model's input check on the validation batch and on every training label (paired
    with a broadcast view of one validation image), before any step."""
    x, val_labels = validation
    model.check_batch(x, val_labels)
    model.check_batch(x[:1].expand(len(labels), *x.shape[1:]), labels.to(x.device))
