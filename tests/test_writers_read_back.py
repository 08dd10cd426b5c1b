"""Every writer reads its output back through the verifying reader before the final rename:
when that read fails, the earlier artifact stays exactly as it was."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from tiny_producer import tiny_producer

from geolip import _safetensors
from geolip.errors import CheckpointError
from geolip.producers.checkpoint import TrainingState, load_checkpoint, save_checkpoint


def _state(seed: int) -> TrainingState:
    model = tiny_producer(seed)
    opt = torch.optim.Adam(model.parameters())
    return TrainingState(model.state_dict(), opt.state_dict(), {"cpu": torch.get_rng_state()}, {})


def _save_checkpoint(path: Path, seed: int) -> None:
    save_checkpoint(path, _state(seed))


def _save_pretrained(path: Path, seed: int) -> None:
    tiny_producer(seed).save_pretrained(path)


@pytest.mark.parametrize(
    "write", [_save_checkpoint, _save_pretrained], ids=["checkpoint", "pretrained"]
)
def test_an_unreadable_result_never_replaces_the_old_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write: Callable[[Path, int], None]
) -> None:
    target = tmp_path / "out"
    write(target, 0)
    before = {p.name: p.read_bytes() for p in target.iterdir()}

    def unreadable(raw: bytes, path: Path, error: _safetensors.ErrorFactory) -> None:
        raise error("simulated: the bytes on disk do not parse", path)

    monkeypatch.setattr(_safetensors, "parse_safetensors", unreadable)
    with pytest.raises(CheckpointError, match="simulated"):
        write(target, 1)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_checkpoint_read_back_gives_the_written_tensors(tmp_path: Path) -> None:
    state = _state(3)
    save_checkpoint(tmp_path / "c", state)
    back = load_checkpoint(tmp_path / "c")
    assert all(torch.equal(back.model[k], v) for k, v in state.model.items())
