"""The artifact format: byte-exact round trips, golden bytes, refusal of every bad input."""

from __future__ import annotations

import hashlib
import json
import pickle
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from strategies import dims, random_rows, seeds, sizes

from geolip import (
    Codebook,
    CodebookError,
    CodebookFormatError,
    CodebookIntegrityError,
    CodebookNotFoundError,
    CodebookValidationError,
    CodebookVersionError,
    _files,
)
from geolip.codebook import io
from geolip.codebook.schema import FORMAT_VERSION, Lineage

GOLDEN = Path(__file__).parent.parent / "data" / "golden"


def golden_codebook() -> Codebook:
    """Fixed axes, stats and meta; its bytes are pinned in tests/data/golden."""
    axes = torch.tensor([[1.0, 0.0, 0.0], [-0.6, 0.8, 0.0], [0.0, 0.0, -2.0]])
    return Codebook.from_axes(
        axes,
        name="golden",
        stats={"usage": torch.tensor([3.0, 1.0, 0.0])},
        lineage=Lineage(operation="create", parameters={"note": "golden bytes"}),
        created_at="2026-11-22T00:00:00+00:00",
        geolip_version="golden",
    )


def test_golden_bytes(tmp_path: Path) -> None:
    cb = golden_codebook()
    cb.save(tmp_path / "cb")
    written = (tmp_path / "cb" / io.TENSOR_FILE).read_bytes()
    pinned = (GOLDEN / io.TENSOR_FILE).read_bytes()
    assert written == pinned, "format bytes changed: that is a new format version"
    assert (tmp_path / "cb" / io.META_FILE).read_text() == (GOLDEN / io.META_FILE).read_text()
    loaded = Codebook.load(GOLDEN)
    assert (
        loaded.id
        == cb.id
        == hashlib.sha256(
            b"geolip.codebook\0v1\0D=3\0K=3\0"
            + loaded.axes.numpy().astype("<f4").tobytes()
            + b"\0usage\0"
            + torch.tensor([3.0, 1.0, 0.0]).numpy().astype("<f4").tobytes()
        ).hexdigest()
    )
    # the header is plain safetensors: sorted keys, 8-byte aligned, F32 little-endian tensors
    (n,) = struct.unpack("<Q", pinned[:8])
    header = json.loads(pinned[8 : 8 + n])
    assert n % 8 == 0
    assert list(header) == ["__metadata__", "axes", "usage"]
    assert header["__metadata__"]["format"] == "geolip.codebook"
    assert header["__metadata__"]["format_version"] == str(FORMAT_VERSION)


@given(k=sizes, d=dims, seed=seeds, as_file=st.booleans())
def test_save_load_round_trip_is_byte_identical(
    tmp_path_factory: pytest.TempPathFactory, k: int, d: int, seed: int, as_file: bool
) -> None:
    tmp = tmp_path_factory.mktemp("rt")
    cb = Codebook.from_axes(random_rows(k, d, seed), stats={"usage": torch.arange(k) * 1.0})
    target = tmp / ("cb.safetensors" if as_file else "cb")
    first = cb.save(target).read_bytes()
    loaded = Codebook.load(target)
    assert loaded.id == cb.id and loaded.meta == cb.meta
    assert torch.equal(loaded.axes, cb.axes)
    assert torch.equal(loaded.stats["usage"], cb.stats["usage"])
    again = loaded.save(tmp / ("again.safetensors" if as_file else "again")).read_bytes()
    assert again == first


def test_load_accepts_folder_and_tensor_file(tmp_path: Path) -> None:
    cb = golden_codebook()
    cb.save(tmp_path / "cb")
    assert Codebook.load(tmp_path / "cb").id == cb.id
    assert Codebook.load(tmp_path / "cb" / io.TENSOR_FILE).id == cb.id


# ------------------------------------------------------------------------------- bad input
def _valid_bytes() -> bytes:
    return (GOLDEN / io.TENSOR_FILE).read_bytes()


def _rewrite(raw: bytes, mutate: Callable[[dict], None], data: bytes | None = None) -> bytes:
    """Re-emit a safetensors file after editing its header (and optionally its data)."""
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    mutate(header)
    head = json.dumps(header).encode()
    return struct.pack("<Q", len(head)) + head + (raw[8 + n :] if data is None else data)


def _write(tmp_path: Path, raw: bytes, name: str = "bad.safetensors") -> Path:
    p = tmp_path / name
    p.write_bytes(raw)
    return p


def _with_axes(axes: torch.Tensor, dtype: str = "F32") -> bytes:
    """A file whose metadata is self-consistent (id included) around arbitrary axes."""
    raw = _valid_bytes()
    blob = axes.numpy().tobytes()
    usage = torch.tensor([3.0, 1.0, 0.0]).numpy().astype("<f4").tobytes()

    def mutate(h: dict) -> None:
        h["axes"] = {"dtype": dtype, "shape": list(axes.shape), "data_offsets": [0, len(blob)]}
        h["usage"]["data_offsets"] = [len(blob), len(blob) + 12]
        if dtype == "F32":
            h["__metadata__"]["id"] = io.codebook_id(axes, {"usage": torch.tensor([3.0, 1.0, 0.0])})

    return _rewrite(raw, mutate, blob + usage)


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: _valid_bytes()[:5], CodebookFormatError, "truncated"),
        (lambda: _valid_bytes()[:100], CodebookFormatError, "truncated"),
        (lambda: _valid_bytes()[:-4], CodebookFormatError, "truncated"),
        (lambda: _valid_bytes() + b"\0" * 8, CodebookFormatError, "trailing"),
        (lambda: struct.pack("<Q", 2**40) + b"{}", CodebookFormatError, "over the"),
        (lambda: pickle.dumps({"axes": [1.0]}, protocol=4), CodebookFormatError, "pickle"),
        (lambda: b"PK\x03\x04" + b"\0" * 64, CodebookFormatError, "pickle"),
        (lambda: struct.pack("<Q", 4) + b"nope", CodebookFormatError, "JSON"),
        (
            lambda: _rewrite(_valid_bytes(), lambda h: h["__metadata__"].update(format="other")),
            CodebookFormatError,
            "format tag",
        ),
        (
            lambda: _rewrite(
                _valid_bytes(), lambda h: h["__metadata__"].update(format_version="99")
            ),
            CodebookVersionError,
            "version 99; this geolip reads up to version 1",
        ),
        (
            lambda: _rewrite(_valid_bytes(), lambda h: h["__metadata__"].update(id="0" * 64)),
            CodebookIntegrityError,
            "altered",
        ),
        (
            lambda: _rewrite(
                _valid_bytes(),
                lambda h: h["__metadata__"].update(
                    meta=h["__metadata__"]["meta"].replace("golden", "GOLDEN", 1)
                ),
            ),
            CodebookIntegrityError,
            "meta",
        ),
        (
            lambda: _with_axes(
                torch.tensor(
                    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64
                ),
                "F64",
            ),
            CodebookFormatError,
            "dtype 'F64'",
        ),
        (
            lambda: _with_axes(
                torch.tensor([[1.0, 0.0, 0.0], [float("nan"), 1.0, 0.0], [0.0, 0.0, 1.0]])
            ),
            CodebookValidationError,
            "NaN",
        ),
        (
            lambda: _with_axes(torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0]])),
            CodebookValidationError,
            "not unit",
        ),
        (
            lambda: _with_axes(torch.tensor([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]])),
            CodebookValidationError,
            "sign-canonical",
        ),
    ],
    ids=[
        "header-length-cut",
        "header-cut",
        "data-cut",
        "trailing",
        "oversized-header",
        "pickle",
        "torch-zip",
        "not-json",
        "format-tag",
        "newer-version",
        "tampered-id",
        "tampered-meta",
        "wrong-dtype",
        "nan",
        "non-unit",
        "non-canonical",
    ],
)
def test_bad_files_are_refused_with_typed_error_naming_the_file(
    tmp_path: Path, make: Callable[[], bytes], error: type[Exception], match: str
) -> None:
    path = _write(tmp_path, make())
    with pytest.raises(error, match=match) as info:
        Codebook.load(path)
    assert info.value.path == path
    assert str(path) in str(info.value)


def test_torch_save_file_is_refused_without_unpickling(tmp_path: Path) -> None:
    path = tmp_path / "evil.safetensors"
    torch.save({"axes": torch.eye(3)}, path)
    with pytest.raises(CodebookFormatError, match="never unpickles"):
        Codebook.load(path)


@pytest.mark.slow
def test_every_single_bit_flip_is_detected(tmp_path: Path) -> None:
    raw = _valid_bytes()
    path = tmp_path / "flip.safetensors"
    for pos in range(len(raw)):
        for bit in (0, 5):
            mutated = bytearray(raw)
            mutated[pos] ^= 1 << bit
            path.write_bytes(bytes(mutated))
            with pytest.raises(CodebookError):
                Codebook.load(path)


def test_tampered_sidecar_is_refused(tmp_path: Path) -> None:
    golden_codebook().save(tmp_path / "cb")
    side = tmp_path / "cb" / io.META_FILE
    side.write_text(side.read_text().replace('"golden"', '"renamed"', 1))
    with pytest.raises(CodebookIntegrityError, match="sidecar"):
        Codebook.load(tmp_path / "cb")
    side.write_text("{not json")
    with pytest.raises(CodebookFormatError, match="sidecar"):
        Codebook.load(tmp_path / "cb")


def test_missing_artifact(tmp_path: Path) -> None:
    with pytest.raises(CodebookNotFoundError):
        Codebook.load(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CodebookNotFoundError):
        Codebook.load(tmp_path / "empty")


# ---------------------------------------------------------------------------- atomic writes
def _explode_on_second_write(monkeypatch: pytest.MonkeyPatch) -> None:
    real = _files._write_synced
    calls = {"n": 0}

    def flaky(path: Path, data: bytes) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            path.write_bytes(data[: len(data) // 2])
            raise OSError("disk full (simulated)")
        real(path, data)

    monkeypatch.setattr(_files, "_write_synced", flaky)


def test_failed_write_leaves_no_partial_artifact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _explode_on_second_write(monkeypatch)
    with pytest.raises(OSError, match="disk full"):
        golden_codebook().save(tmp_path / "cb")
    assert not (tmp_path / "cb").exists()
    assert list(tmp_path.iterdir()) == []


def test_failed_overwrite_keeps_the_old_artifact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = Codebook.from_axes(random_rows(4, 3, 0))
    old.save(tmp_path / "cb")
    before = {p.name: p.read_bytes() for p in (tmp_path / "cb").iterdir()}
    _explode_on_second_write(monkeypatch)
    with pytest.raises(OSError):
        golden_codebook().save(tmp_path / "cb")
    assert {p.name: p.read_bytes() for p in (tmp_path / "cb").iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["cb"]
    assert Codebook.load(tmp_path / "cb").id == old.id


def test_overwrite_replaces_artifact_and_refuses_foreign_folders(tmp_path: Path) -> None:
    Codebook.from_axes(random_rows(4, 3, 0)).save(tmp_path / "cb")
    new = golden_codebook()
    new.save(tmp_path / "cb")
    assert Codebook.load(tmp_path / "cb").id == new.id
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("keep me")
    with pytest.raises(CodebookFormatError, match="not a codebook artifact"):
        new.save(tmp_path / "docs")
    assert (tmp_path / "docs" / "notes.txt").read_text() == "keep me"


# ------------------------------------------- header lengths that start like a pickle (issue)
PICKLE_LIKE_LENGTHS = (640, 896, 1152, 1408)
"""Header lengths whose little-endian bytes begin 80 02 … 80 05: pickle protocols 2 to 5."""
PICKLE_OPCODES = {bytes([0x80, n // 256]) for n in PICKLE_LIKE_LENGTHS}
# up to 7 header bytes a character, escapes included; lone surrogates are refused on creation
_BMP = st.characters(max_codepoint=0xFFFF, exclude_categories=("Cs",))


def _header_length(cb: Codebook) -> int:
    return struct.unpack("<Q", io.serialize(cb.axes, cb.stats, cb.meta, cb.id)[:8])[0]


def _codebook_with_header_length(
    target: int, axes: torch.Tensor, description: str, note: str, parents: list[str]
) -> Codebook | None:
    """The codebook whose name (ASCII letters) pads its header to exactly ``target`` bytes, or
    ``None`` when the other fields alone already need more."""

    def build(name_len: int) -> Codebook:
        return Codebook.from_axes(
            axes,
            name="n" * name_len,
            extra={"description": description},
            lineage=Lineage(operation="create", parents=parents, parameters={"note": note}),
            created_at="2026-12-05T00:00:00+00:00",
            geolip_version="test",
        )

    base = _header_length(build(0))
    if base > target:
        return None
    name_len = max(0, target - base - 8)  # one name byte is one header byte, padded to 8
    while _header_length(cb := build(name_len)) < target:
        name_len += 1
    return cb


@pytest.mark.parametrize("target", PICKLE_LIKE_LENGTHS)
@given(k=st.integers(1, 12), d=st.integers(2, 8), seed=seeds, data=st.data(), as_file=st.booleans())
def test_headers_that_start_like_a_pickle_still_round_trip(
    tmp_path_factory: pytest.TempPathFactory,
    target: int,
    k: int,
    d: int,
    seed: int,
    data: st.DataObject,
    as_file: bool,
) -> None:
    # text and lineage budgets that always leave room for the name to pad up to ``target``
    room = (target - 640) // 32
    description = data.draw(st.text(_BMP, max_size=room), label="description")
    note = data.draw(st.text(_BMP, max_size=room), label="lineage note")
    n_parents = data.draw(st.integers(0, (target - 640) // 256), label="parents")
    parents = [hashlib.sha256(f"{seed}-{i}".encode()).hexdigest() for i in range(n_parents)]
    cb = _codebook_with_header_length(target, random_rows(k, d, seed), description, note, parents)
    assert cb is not None
    path = tmp_path_factory.mktemp("pk") / ("cb.safetensors" if as_file else "cb")
    written = cb.save(path).read_bytes()
    assert struct.unpack("<Q", written[:8])[0] == target
    assert written[:2] == bytes([0x80, target // 256])  # exactly a pickle protocol opcode
    loaded = Codebook.load(path)
    assert loaded.id == cb.id and loaded.meta == cb.meta


@pytest.mark.slow
def test_every_header_length_of_a_random_sweep_round_trips(tmp_path: Path) -> None:
    """2,000 random artifacts (K, D, name, description, lineage all varied) read back; about
    1 in 20 has a header length that starts with a pickle opcode, and those must read too."""
    g = torch.Generator().manual_seed(2026)
    alphabet = "abcdefghijklmnopqrstuvwxyz-_ äöü€"
    pickle_like = 0

    def text(max_len: int) -> str:
        n = int(torch.randint(0, max_len + 1, (1,), generator=g))
        picks = torch.randint(0, len(alphabet), (n,), generator=g).tolist()
        return "".join(alphabet[i] for i in picks)

    for i in range(2000):
        k = int(torch.randint(1, 65, (1,), generator=g))
        d = int(torch.randint(2, 17, (1,), generator=g))
        stats = {"usage": torch.rand(k, generator=g)} if i % 2 else None
        cb = Codebook.from_axes(
            torch.randn(k, d, generator=g, dtype=torch.float64),
            name=text(48),
            stats=stats,
            extra={"description": text(200)},
            lineage=Lineage(operation="create", parameters={"note": text(200)}),
        )
        path = cb.save(tmp_path / f"cb{i % 7}.safetensors")
        pickle_like += path.read_bytes()[:2] in PICKLE_OPCODES
        assert Codebook.load(path).id == cb.id, f"artifact {i} (K={k}, D={d}) did not read back"
    assert pickle_like >= 20  # the sweep really exercised the lengths that used to be refused


def test_a_lone_surrogate_is_refused_before_anything_is_written() -> None:
    """Python's json writes "\\ud800" but no UTF-8 reader takes it back: refuse it up front."""
    with pytest.raises(ValueError, match="valid Unicode"):
        Codebook.from_axes(random_rows(2, 3, 0), name="bad \ud800")
