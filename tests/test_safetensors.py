"""The one safetensors reader: any header length reads, pickles and zips are named as such."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from safetensors.torch import save

from geolip._safetensors import load_tensors, not_safetensors
from geolip.errors import CheckpointError


def _file_with_header_length(target: int, tensor: torch.Tensor) -> bytes:
    """safetensors bytes whose header is exactly ``target`` bytes (padded by a metadata note)."""
    for note_len in range(target):
        raw = save({"w": tensor}, metadata={"note": "x" * note_len})
        n = struct.unpack("<Q", raw[:8])[0]
        if n == target:
            return raw
        if n > target:
            break
    raise AssertionError(f"no note length gives a header of {target} bytes")


@pytest.mark.parametrize(
    # each longer header costs a longer search for its note: `-m "not slow"` keeps the first
    "target",
    [640, *(pytest.param(n, marks=pytest.mark.slow) for n in (896, 1152, 1408))],
)
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=3), seed=st.integers(0, 99))
def test_headers_that_look_like_pickle_opcodes_read(
    tmp_path_factory: pytest.TempPathFactory, target: int, shape: list[int], seed: int
) -> None:
    tensor = torch.randn(*shape, generator=torch.Generator().manual_seed(seed))
    raw = _file_with_header_length(target, tensor)
    assert raw[:2] == bytes([0x80, target // 256])
    path = tmp_path_factory.mktemp("st") / "w.safetensors"
    path.write_bytes(raw)
    tensors, metadata = load_tensors(path, not_safetensors)
    assert torch.equal(tensors["w"], tensor) and metadata["note"].startswith("x")


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (pickle.dumps({"w": [1.0]}, protocol=3), "pickle"),
        (b"PK\x03\x04" + b"\0" * 60, "pickle"),
        (struct.pack("<Q", 4) + b"nope", "not valid JSON"),
        (struct.pack("<Q", 100) + b"{}", "truncated"),
    ],
    ids=["pickle", "zip", "not-json", "short-header"],
)
def test_what_does_not_parse_is_refused_naming_the_file(
    tmp_path: Path, raw: bytes, match: str
) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(raw)
    with pytest.raises(CheckpointError, match=match) as info:
        load_tensors(path, not_safetensors)
    assert info.value.path == path
