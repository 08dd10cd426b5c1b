"""The one verifying reader of safetensors files, used by every geolip artifact.

A safetensors file is an 8-byte little-endian header length ``n``, ``n`` bytes of JSON, then the
tensor data. The header length is arbitrary: 896 is ``80 03 00 …``, the first two bytes of a
pickle of protocol 3. So a file is called a pickle or a torch zip archive only when it does *not*
parse as safetensors, and the magic bytes then only choose the message.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as safetensors_load

from geolip.errors import CheckpointError

MAX_HEADER_BYTES = 16 * 1024 * 1024
_PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")
_ZIP_MAGIC = b"PK\x03\x04"

ErrorFactory = Callable[[str, Path], Exception]
"""Builds the caller's typed error from (problem, path)."""


@dataclass(frozen=True)
class SafetensorsFile:
    """A parsed file: its header (``__metadata__`` removed), metadata and raw tensor data."""

    header: dict[str, dict]
    metadata: dict[str, str]
    data: bytes
    raw: bytes

    def tensors(self, path: Path, error: ErrorFactory) -> dict[str, torch.Tensor]:
        """Every tensor, decoded by the safetensors library (offsets and dtypes checked there)."""
        try:
            return safetensors_load(self.raw)
        except SafetensorError as err:
            raise error(f"safetensors refused the file: {err}", path) from err


def parse_safetensors(raw: bytes, path: Path, error: ErrorFactory) -> SafetensorsFile:
    """Split ``raw`` into header and data, refusing what is not a safetensors file.

    Raises:
        ``error(problem, path)``: truncated, oversized or non-JSON header, or a pickle / zip
        archive (recognised only after the safetensors parse has failed).
    """
    try:
        header, data = _split(raw)
    except ValueError as err:
        if raw[:2] in _PICKLE_MAGIC or raw[:4] == _ZIP_MAGIC:
            raise error(
                "this is a pickle / torch.save archive; geolip never unpickles, "
                "artifacts are safetensors + JSON",
                path,
            ) from err
        raise error(str(err), path) from err
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise error("__metadata__ is not a string-to-string map", path)
    return SafetensorsFile(header=header, metadata=metadata, data=data, raw=raw)


def read_safetensors(path: str | Path, error: ErrorFactory) -> SafetensorsFile:
    """Read and parse the file at ``path`` (see :func:`parse_safetensors`)."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as err:
        raise error(f"cannot be read ({err.strerror or err})", p) from err
    return parse_safetensors(raw, p, error)


def load_tensors(
    path: str | Path, error: ErrorFactory
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of a safetensors file, every failure raised as ``error``."""
    p = Path(path)
    parsed = read_safetensors(p, error)
    return parsed.tensors(p, error), parsed.metadata


def not_safetensors(problem: str, path: Path) -> CheckpointError:
    """The :class:`CheckpointError` of a model, head or cache file that is not safetensors."""
    return CheckpointError(f"not a valid safetensors file ({problem})", path)


def _split(raw: bytes) -> tuple[dict, bytes]:
    if len(raw) < 8:
        raise ValueError(f"truncated: {len(raw)} bytes, not even a header length")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > MAX_HEADER_BYTES:
        raise ValueError(f"header claims {n} bytes, over the {MAX_HEADER_BYTES}-byte limit")
    if 8 + n > len(raw):
        raise ValueError(f"truncated: header needs {n} bytes, file has {len(raw) - 8}")
    try:
        header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"header is not valid JSON ({err})") from err
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object")
    return header, raw[8 + n :]
