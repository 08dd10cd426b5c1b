"""The trainer: learning, checkpoints, exact resume (in-process and after SIGKILL), gloo DDP."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import weakref
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from safetensors.torch import load_file
from torch.nn.parallel import DistributedDataParallel

from geolip.data.noise import noise_batch
from geolip.errors import CheckpointError, TrainingInterrupted
from geolip.producers.checkpoint import load_checkpoint
from geolip.producers.loading import load_producer
from geolip.producers.presets import build, train_config, train_preset
from geolip.producers.sphere_solver import SphereSolver
from geolip.producers.train import TrainConfig, Trainer, leave_distributed
from geolip.solvers.metrics import effective_rank
from geolip.solvers.null import row_spectrum_null

TINY_MODEL = {"V": 8, "D": 4, "patch_size": 4, "hidden": 16, "depth": 1, "n_cross": 1}
TINY_TRAIN = {
    "batch_size": 4,
    "img_size": 8,
    "epochs": 2,
    "steps_per_epoch": 6,
    "eval_per_type": 2,
    "noises": ("gaussian", "uniform", "pink"),
}


def tiny(seed: int = 0) -> SphereSolver:
    torch.manual_seed(seed)
    return build("h2", **TINY_MODEL)


def run(out: Path, resume: bool = False, **overrides) -> Trainer:
    trainer = Trainer(tiny(), train_config("h2", **{**TINY_TRAIN, **overrides}), out, resume=resume)
    trainer.fit(progress=False)
    return trainer


@pytest.mark.slow
def test_training_lowers_validation_mse(tmp_path: Path) -> None:
    trainer = Trainer(tiny(), train_config("h2", **{**TINY_TRAIN, "epochs": 1}), tmp_path)
    before = trainer.evaluate()["mse"]
    trained = run(tmp_path / "run", epochs=3, steps_per_epoch=20, lr=3e-3)
    history = trained.history
    assert history[-1]["mse"] < before
    assert set(history[-1]["mse_per_type"]) == set(TINY_TRAIN["noises"])
    # the logged erank is that of the spectra the model emits on the seeded validation set
    # (S, after cross-attention), recomputed here from a fresh forward pass
    gen = torch.Generator().manual_seed(10_000 + trained.config.seed)
    model = trained.model.eval()
    with torch.no_grad():
        outs = [
            model(noise_batch(kind, trained.config.eval_per_type, 8, generator=gen))
            for kind in trained.config.noises
        ]
    s = torch.cat([o["S"].flatten(0, -2) for o in outs]).double()
    assert history[-1]["effective_rank"] == pytest.approx(effective_rank(s).mean().item(), abs=1e-6)
    last = history[-1]  # every spectral statistic beside its i.i.d.-rows null, the same each epoch
    expected = row_spectrum_null(8, 4, last["null_matrices"], seed=trained.config.seed)
    assert last["effective_rank_null_mean"] == expected.summary()["effective_rank_null_mean"]
    assert 3.5 < last["effective_rank_null_mean"] < 4.0 and last["effective_rank_null_sd"] > 0
    assert last["s0_over_sd_null_mean"] > 1 and last["s0_over_sd_null_sd"] > 0
    assert last["effective_rank_null_mean"] == history[0]["effective_rank_null_mean"]
    assert len(history[-1]["alpha_mean"]) == 1  # one cross-attention layer


@pytest.mark.slow
def test_checkpoints_are_safetensors_and_json_and_reload(tmp_path: Path) -> None:
    trainer = run(tmp_path, save_every=4)
    for name in ("latest", "best"):
        folder = tmp_path / name
        assert sorted(p.name for p in folder.iterdir()) == [
            "config.json",
            "model.safetensors",
            "optimizer.safetensors",
            "rng.safetensors",
        ]
    config = json.loads((tmp_path / "latest" / "config.json").read_text())
    assert config["step"] == 12 and config["epoch"] == 2 and config["preset"] == "h2"
    model = load_producer(tmp_path / "latest")
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(model.state_dict()[key], value)
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary folders left behind


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "model.safetensors")


@pytest.mark.slow
def test_resume_after_a_crash_equals_the_uninterrupted_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = run(tmp_path / "full", save_every=3)
    crashed = Trainer(
        tiny(), train_config("h2", **{**TINY_TRAIN, "save_every": 3}), tmp_path / "crash"
    )
    real_step = Trainer.train_step

    def dying_step(self: Trainer) -> torch.Tensor:
        if self.step == 8:  # after the step-6 checkpoint, before the next one
            raise RuntimeError("simulated crash")  # not Ctrl-C: nothing more is saved
        return real_step(self)

    monkeypatch.setattr(Trainer, "train_step", dying_step)
    with pytest.raises(RuntimeError, match="simulated crash"):
        crashed.fit(progress=False)
    monkeypatch.setattr(Trainer, "train_step", real_step)
    assert load_checkpoint(tmp_path / "crash" / "latest").config["step"] == 6
    resumed = run(tmp_path / "crash", resume=True, save_every=3)
    assert resumed.step == full.step == 12
    a, b = _weights(tmp_path / "full" / "latest"), _weights(tmp_path / "crash" / "latest")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.history == full.history


@pytest.mark.slow
@pytest.mark.parametrize("stop_at", [8, 0])  # mid-run, and before any checkpoint existed
def test_ctrl_c_saves_the_interrupted_step_and_resumes_to_the_same_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stop_at: int
) -> None:
    full = run(tmp_path / "full", save_every=5)
    stopped = Trainer(tiny(), train_config("h2", **{**TINY_TRAIN, "save_every": 5}), tmp_path / "c")
    real_step = Trainer.train_step

    def interrupted_step(self: Trainer) -> torch.Tensor:
        if self.step == stop_at:
            raise KeyboardInterrupt
        return real_step(self)

    monkeypatch.setattr(Trainer, "train_step", interrupted_step)
    with pytest.raises(TrainingInterrupted) as info:
        stopped.fit(progress=False)
    monkeypatch.setattr(Trainer, "train_step", real_step)
    assert isinstance(info.value, KeyboardInterrupt) and info.value.step == stop_at
    assert load_checkpoint(tmp_path / "c" / "latest").config["step"] == stop_at
    resumed = run(tmp_path / "c", resume=True, save_every=5)
    assert resumed.step == full.step == 12
    a, b = _weights(tmp_path / "full" / "latest"), _weights(tmp_path / "c" / "latest")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.history == full.history


@pytest.mark.slow
def test_a_real_sigint_is_deferred_to_the_end_of_the_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trainer = Trainer(tiny(), train_config("h2", **TINY_TRAIN), tmp_path)
    real_step = Trainer.train_step

    def step_then_signal(self: Trainer) -> torch.Tensor:
        if self.step == 3:
            os.kill(os.getpid(), signal.SIGINT)  # arrives mid-step
        return real_step(self)

    monkeypatch.setattr(Trainer, "train_step", step_then_signal)
    with pytest.raises(TrainingInterrupted):
        trainer.fit(progress=False)
    assert load_checkpoint(tmp_path / "latest").config["step"] == 4  # the step completed
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_resume_with_more_epochs_extends_the_run_on_the_new_cosine(tmp_path: Path) -> None:
    first = run(tmp_path, epochs=1)
    assert first.optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    longer = Trainer(
        tiny(), train_config("h2", **{**TINY_TRAIN, "epochs": 3}), tmp_path, resume=True
    )
    base = longer.scheduler.base_lrs[0]
    # the remaining epochs follow CosineAnnealingLR(T_max=3) from epoch 1
    assert longer.optimizer.param_groups[0]["lr"] == pytest.approx(base * 0.75)
    longer.fit(progress=False)
    assert longer.step == 18 and longer.epoch == 3 and len(longer.history) == 3
    assert longer.history[0] == first.history[0]
    assert load_checkpoint(tmp_path / "latest").config["train"]["epochs"] == 3
    with pytest.raises(ValueError, match="already completed 3 epochs"):
        Trainer(tiny(), train_config("h2", **{**TINY_TRAIN, "epochs": 2}), tmp_path, resume=True)


def test_train_preset_resume_defaults_to_the_checkpoint_and_names_changed_fields(
    tmp_path: Path,
) -> None:
    small = {k: v for k, v in TINY_TRAIN.items() if k != "epochs"}
    train_preset(
        "h2", tmp_path, seed=3, progress=False, model_overrides=TINY_MODEL, epochs=1, **small
    )
    resumed = train_preset("h2", tmp_path, resume=True, progress=False, epochs=2)
    assert resumed.step == 12 and resumed.config.seed == 3
    with pytest.raises(ValueError, match=r"lr: 0\.001 → 0\.5") as info:
        train_preset("h2", tmp_path, resume=True, progress=False, lr=0.5, batch_size=2)
    assert "batch_size: 4 → 2" in str(info.value) and "epochs:" not in str(info.value)
    with pytest.raises(ValueError, match=r"model config differs.*hidden: 16 → 32"):
        train_preset("h2", tmp_path, resume=True, progress=False, model_overrides={"hidden": 32})
    with pytest.raises(ValueError, match="preset 'h2', not 'h2a'"):
        train_preset("h2a", tmp_path, resume=True, progress=False)


def _train_cli(out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "geolip.cli.app",
        "train",
        "sphere-solver",
        "--preset",
        "h2",
        "--out",
        str(out),
        "--epochs",
        "2",
        "--steps-per-epoch",
        "30",
        "--batch-size",
        "8",
        "--img-size",
        "16",
        "--save-every",
        "5",
        "--noises",
        "gaussian,uniform",
        "--model",
        json.dumps(TINY_MODEL),
        "--json",
        *extra,
    ]


def _quiet_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.mark.slow
def test_sigkill_then_resume_is_bit_identical(tmp_path: Path) -> None:
    env = _quiet_env()
    subprocess.run(_train_cli(tmp_path / "full"), env=env, check=True, capture_output=True)
    proc = subprocess.Popen(
        _train_cli(tmp_path / "killed"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    latest = tmp_path / "killed" / "latest" / "config.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if latest.exists() and 10 <= json.loads(latest.read_text())["step"] < 55:
            break
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = json.loads(latest.read_text())["step"]
    assert killed_at < 60, "the run finished before it could be killed"
    subprocess.run(
        _train_cli(tmp_path / "killed", "--resume"), env=env, check=True, capture_output=True
    )
    a, b = _weights(tmp_path / "full" / "latest"), _weights(tmp_path / "killed" / "latest")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert load_checkpoint(tmp_path / "killed" / "latest").config["step"] == 60


def _torchrun(out: Path, *extra: str) -> None:
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    assert torchrun is not None
    cmd = [torchrun, "--standalone", "--nproc_per_node", "2", *_train_cli(out, *extra)[1:]]
    done = subprocess.run(cmd, env=_quiet_env(), capture_output=True, text=True, timeout=300)
    # the ranks' own lines come first, torchrun's summary of the failure last
    assert done.returncode == 0, f"{done.stderr[:2000]}\n...\n{done.stderr[-1500:]}"


@pytest.mark.slow
def test_distributed_training_with_gloo_two_processes(tmp_path: Path) -> None:
    """Two gloo ranks draw distinct noise streams, and the same run twice is the same run."""
    _torchrun(tmp_path / "ddp")
    state = load_checkpoint(tmp_path / "ddp" / "latest")
    data_states = state.rng["data"]
    assert data_states.shape[0] == 2 and not torch.equal(data_states[0], data_states[1])
    assert state.config["step"] == 60
    assert all(torch.isfinite(t).all() for t in state.model.values())
    _torchrun(tmp_path / "again")
    again = load_checkpoint(tmp_path / "again" / "latest")
    assert torch.equal(again.rng["data"], data_states)
    for key, value in state.model.items():
        assert torch.equal(again.model[key], value), key


def test_leaving_the_process_group_releases_the_ddp_wrapper_first(tmp_path: Path) -> None:
    """The DDP wrapper's reducer holds the group; a gloo group still held at interpreter exit
    aborted a finished rank now and then, so the wrapper is gone before the group is."""
    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        trainer = Trainer(tiny(), train_config("h2", **TINY_TRAIN), tmp_path / "run")
        wrapper = weakref.ref(trainer.model)
        assert isinstance(trainer.model, DistributedDataParallel)
        leave_distributed(trainer)
        assert wrapper() is None and isinstance(trainer.model, SphereSolver)
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


@pytest.mark.slow
def test_checkpoints_move_between_world_sizes(tmp_path: Path) -> None:
    """A two-rank checkpoint resumes in one process (rank 0 continues its stream), and a
    one-process checkpoint resumes on two ranks (rank 1 starts its seeded stream)."""
    _torchrun(tmp_path / "two")
    written = load_checkpoint(tmp_path / "two" / "latest")
    longer = TrainConfig(**{**written.config["train"], "epochs": 3})
    one = Trainer(tiny(), longer, tmp_path / "two", resume=True)
    assert torch.equal(one.data_gen.get_state(), written.rng["data"][0])
    one.fit(progress=False)
    assert one.step == 90 and math.isfinite(one.history[-1]["mse"])

    env = _quiet_env()
    subprocess.run(_train_cli(tmp_path / "single"), env=env, check=True, capture_output=True)
    _torchrun(tmp_path / "single", "--resume", "--epochs", "3")
    state = load_checkpoint(tmp_path / "single" / "latest")
    assert state.config["step"] == 90 and state.rng["data"].shape[0] == 2
    assert not torch.equal(state.rng["data"][0], state.rng["data"][1])


def test_resume_refuses_a_different_recipe_and_corrupt_checkpoints(tmp_path: Path) -> None:
    run(tmp_path)
    with pytest.raises(ValueError, match=r"train config differs.*\(lr: 0\.001 → 0\.5\)"):
        Trainer(tiny(), train_config("h2", **{**TINY_TRAIN, "lr": 0.5}), tmp_path, resume=True)
    (tmp_path / "latest" / "optimizer.safetensors").write_bytes(b"\x00" * 12)
    with pytest.raises(CheckpointError, match=r"optimizer.safetensors: not a valid safetensors"):
        load_checkpoint(tmp_path / "latest")
    (tmp_path / "latest" / "config.json").unlink()
    with pytest.raises(CheckpointError, match=r"config\.json"):
        load_producer(tmp_path / "latest")


@pytest.mark.slow
def test_warmup_cosine_ramps_up_then_decays_to_zero_per_step(tmp_path: Path) -> None:
    recipe = {**TINY_TRAIN, "epochs": 1, "lr_schedule": "warmup-cosine", "warmup_steps": 2}
    trainer = Trainer(tiny(), train_config("h2", **recipe), tmp_path)
    base = trainer.scheduler.base_lrs[0]
    lrs = [trainer.optimizer.param_groups[0]["lr"]]
    for _ in range(6):
        trainer.train_step()
        lrs.append(trainer.optimizer.param_groups[0]["lr"])
    # steps 0, 1 warm up (½, 1); steps 2…6 follow ½(1 + cos πu), u = (step − 2)/4
    expected = [base * f for f in (0.5, 1.0, 1.0, 0.5 + 0.5 * 2**-0.5, 0.5, 0.5 - 0.5 * 2**-0.5)]
    assert lrs[:6] == pytest.approx(expected)
    assert lrs[6] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.slow
def test_resume_of_a_checkpoint_written_before_the_schedule_fields_existed(
    tmp_path: Path,
) -> None:
    """A checkpoint whose train config lacks a field added since is read with that field's
    default; a run asking for another value is refused, naming the field."""
    run(tmp_path, epochs=1)
    config_file = tmp_path / "latest" / "config.json"
    config = json.loads(config_file.read_text())
    for field in ("lr_schedule", "warmup_steps"):
        del config["train"][field]
    config_file.write_text(json.dumps(config))
    resumed = Trainer(
        tiny(), train_config("h2", **{**TINY_TRAIN, "epochs": 2}), tmp_path, resume=True
    )
    assert resumed.step == 6
    other = {**TINY_TRAIN, "epochs": 2, "lr_schedule": "warmup-cosine"}
    with pytest.raises(ValueError, match="lr_schedule: 'cosine-epochs' → 'warmup-cosine'"):
        Trainer(tiny(), train_config("h2", **other), tmp_path, resume=True)
