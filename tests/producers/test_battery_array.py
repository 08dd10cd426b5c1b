"""The battery array: flat bank order, the MSE signature, save/load, from_solvers, codebooks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from strategies import gen

from geolip import Codebook
from geolip.errors import CheckpointError, CheckpointNotFoundError
from geolip.producers.battery_array import BatteryArray
from geolip.producers.extract import extract_codebook
from geolip.producers.sphere_solver import SphereSolver, SphereSolverConfig

TINY = SphereSolverConfig(V=8, D=4, patch_size=4, hidden=16, depth=1, n_cross=1, readout="linear")
NAMES = ("gauss", "pink", "mix")
PHASES = ("epoch_1", "best", "final")


def solvers(config: SphereSolverConfig = TINY, count: int = 9) -> list[SphereSolver]:
    """``count`` solvers from seeds 0, 1, …, so that every bank reconstructs differently."""
    out = []
    for seed in range(count):
        torch.manual_seed(seed)
        out.append(SphereSolver(config))
    return out


@pytest.fixture(scope="module")
def parts() -> list[SphereSolver]:
    return solvers()


@pytest.fixture(scope="module")
def array(parts: list[SphereSolver]) -> BatteryArray:
    noises = (("gaussian",), ("pink",), ("gaussian", "pink"))
    return BatteryArray.from_solvers(parts, NAMES, noises, phases=PHASES)


def images(b: int = 5) -> torch.Tensor:
    return torch.randn(b, 3, 8, 8, generator=gen(0))


@pytest.mark.slow
def test_signature_is_each_banks_own_mse_in_flat_battery_major_order(
    array: BatteryArray, parts: list[SphereSolver]
) -> None:
    x = images()
    sig = array(x)
    assert sig.shape == (5, 3, 3) and not sig.requires_grad
    for b in range(3):
        for p in range(3):
            recon = parts[b * 3 + p](x)["recon"]  # the original solver, not the array's copy
            mse = ((recon - x) ** 2).mean(dim=(1, 2, 3))
            torch.testing.assert_close(sig[:, b, p], mse.detach(), rtol=0, atol=1e-7)
    # distinct banks give distinct features, so a transposed layout could not pass the loop
    assert sig.flatten(1).std(dim=1).min() > 1e-4


def test_bank_lookup_by_name_index_and_negative_index(array: BatteryArray) -> None:
    assert array.bank("pink", "best") is array.banks[1 * 3 + 1]
    assert array.bank(2, 0) is array.bank("mix", "epoch_1") is array.banks[6]
    assert array.bank("gauss") is array.bank(0, "final") is array.banks[2]
    assert array.config.bank_keys[5] == "pink/final"
    with pytest.raises(KeyError, match="unknown battery 'brown'"):
        array.bank("brown")
    with pytest.raises(IndexError, match="phase index 3"):
        array.bank(0, 3)


@pytest.mark.slow
def test_save_load_round_trip_keeps_state_and_signature(
    array: BatteryArray, tmp_path: Path
) -> None:
    folder = array.save_pretrained(tmp_path / "arr")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    keys = load_file(folder / "model.safetensors").keys()
    assert "banks.8.readout.weight" in keys and len(keys) == len(array.state_dict())
    loaded = BatteryArray.from_folder(folder)
    assert loaded.config == array.config
    for key, value in array.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    x = images(3)
    assert torch.equal(loaded.signature(x), array.signature(x))
    array.save_pretrained(folder)  # replacing an earlier save is allowed
    assert BatteryArray.from_folder(folder).config.noises[2] == ("gaussian", "pink")


def test_float64_arrays_load_as_float64(tmp_path: Path) -> None:
    arr = BatteryArray.from_solvers([s.double() for s in solvers(count=2)], ["a", "b"])
    loaded = BatteryArray.from_folder(arr.save_pretrained(tmp_path / "f64"))
    assert loaded.banks[1].enc_in.weight.dtype == torch.float64
    assert torch.equal(loaded.banks[1].enc_in.weight, arr.banks[1].enc_in.weight)


def small_folder(tmp_path: Path) -> Path:
    return BatteryArray.from_solvers(solvers(count=2), ["a", "b"]).save_pretrained(tmp_path / "arr")


@pytest.mark.parametrize(
    ("file", "content", "problem"),
    [
        ("config.json", None, "missing"),
        ("model.safetensors", None, "missing"),
        ("config.json", b"{not json", "config"),
        ("config.json", b"\xff\xfe", "config"),
        ("config.json", b"[1, 2]", "config"),
        ("model.safetensors", b"\x00" * 12, "safetensors"),
    ],
)
def test_damaged_folders_are_refused_naming_the_file(
    tmp_path: Path, file: str, content: bytes | None, problem: str
) -> None:
    folder = small_folder(tmp_path)
    if content is None:
        (folder / file).unlink()
    else:
        (folder / file).write_bytes(content)
    with pytest.raises(CheckpointError, match=problem) as info:
        BatteryArray.from_folder(folder)
    assert info.value.path == folder / file


def edit_config(folder: Path, **changes: object) -> None:
    path = folder / "config.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | changes))


def test_foreign_and_mismatched_folders_are_refused(tmp_path: Path) -> None:
    folder = small_folder(tmp_path)
    edit_config(folder, model_class="SphereSolver")
    with pytest.raises(CheckpointError, match="'SphereSolver'") as info:
        BatteryArray.from_folder(folder)
    assert info.value.path == folder / "config.json"

    folder = small_folder(tmp_path / "b")
    edit_config(folder, batteries=["a", "b", "c"])  # three batteries, weights for two
    with pytest.raises(CheckpointError, match=r"banks\.2\.") as info:
        BatteryArray.from_folder(folder)
    assert info.value.path == folder / "model.safetensors"

    folder = small_folder(tmp_path / "c")
    edit_config(folder, model=TINY.model_copy(update={"hidden": 32}).model_dump())
    with pytest.raises(CheckpointError, match="another shape") as info:
        BatteryArray.from_folder(folder)
    assert info.value.path == folder / "model.safetensors"

    folder = small_folder(tmp_path / "d")
    edit_config(folder, noises=[["gaussian"]])  # one noise list for two batteries
    with pytest.raises(CheckpointError, match="1 noise lists for 2") as info:
        BatteryArray.from_folder(folder)
    assert info.value.path == folder / "config.json"

    folder = small_folder(tmp_path / "e")
    state = load_file(folder / "model.safetensors")
    state["banks.0.extra"] = torch.zeros(1)
    state["banks.1.enc_in.bias"] = state["banks.1.enc_in.bias"].long()
    save_file(state, folder / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"2 tensors .* first 'banks\.0\.extra'"):
        BatteryArray.from_folder(folder)

    with pytest.raises(CheckpointNotFoundError):
        BatteryArray.from_folder(tmp_path / "nowhere")


def test_save_refuses_to_replace_a_foreign_folder(tmp_path: Path) -> None:
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    arr = BatteryArray.from_solvers(solvers(count=1), ["a"])
    with pytest.raises(CheckpointError, match="not overwriting"):
        arr.save_pretrained(foreign)
    assert (foreign / "keep.txt").read_text() == "mine"
    with pytest.raises(CheckpointError, match="not overwriting"):
        arr.save_pretrained(foreign / "keep.txt")


def test_from_solvers_refuses_mixed_configs_and_wrong_counts() -> None:
    wider = solvers(TINY.model_copy(update={"hidden": 32}), count=1)
    with pytest.raises(ValueError, match=r"solver 1 config differs.*hidden 32 ≠ 16"):
        BatteryArray.from_solvers(solvers(count=1) + wider, ["a", "b"])
    with pytest.raises(ValueError, match="2 batteries × 3 phases = 6 solvers, got 2"):
        BatteryArray.from_solvers(solvers(count=2), ["a", "b"], phases=PHASES)
    with pytest.raises(ValueError, match="unknown training noises"):
        BatteryArray.from_solvers(solvers(count=1), ["a"], noises=[["gausian"]])
    with pytest.raises(ValueError, match="unique"):
        BatteryArray.from_solvers(solvers(count=2), ["a", "a"])


def test_from_solvers_copies_instead_of_sharing(parts: list[SphereSolver]) -> None:
    arr = BatteryArray.from_solvers(parts[:1], ["a"])
    with torch.no_grad():
        arr.banks[0].enc_in.weight.add_(1)
    assert not torch.equal(arr.banks[0].enc_in.weight, parts[0].enc_in.weight)


def test_extract_codebooks_one_per_requested_bank(
    array: BatteryArray, parts: list[SphereSolver], tmp_path: Path
) -> None:
    options = {"size": 8, "null_trials": 20, "controls": False}
    books = array.extract_codebooks("gaussian", n=4, banks=["pink/best", 8], **options)
    assert list(books) == ["pink/best", "mix/final"]
    for (key, cb), flat in zip(books.items(), (4, 8), strict=True):
        assert cb.name == key and cb.meta.lineage.operation == "extract"
        assert cb.meta.extraction.n_rows == 8 and cb.meta.quality.null.n_trials == 20
        assert Codebook.load(cb.save(tmp_path / key.replace("/", "-"))).id == cb.id  # verified
        # the content id is that of the original solver's own extraction
        assert cb.id == extract_codebook(parts[flat], "gaussian", n=4, **options).id
    everything = array.extract_codebooks("gaussian", n=2, **options)
    assert list(everything) == list(array.config.bank_keys)
