"""Byte-exact reading and writing of codebook artifacts (contract: ``docs/format.md``).

The safetensors container is written here rather than by ``safetensors.torch.save``: that
writer emits ``__metadata__`` keys in hash-map order, so two saves of the same codebook would
differ in bytes. Reading goes through our header checks first, then ``safetensors.torch.load``.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from pydantic import ValidationError

from geolip._files import atomic_write, write_folder
from geolip._safetensors import parse_safetensors
from geolip.codebook.schema import FORMAT_TAG, FORMAT_VERSION, CodebookMeta
from geolip.errors import (
    CodebookFormatError,
    CodebookIntegrityError,
    CodebookNotFoundError,
    CodebookValidationError,
    CodebookVersionError,
)
from geolip.solvers.projective import non_canonical_rows

TENSOR_FILE = "codebook.safetensors"
META_FILE = "codebook.json"
UNIT_TOLERANCE = 1e-5


@dataclass(frozen=True)
class ArtifactContent:
    """What an artifact holds once every check has passed."""

    axes: torch.Tensor
    stats: dict[str, torch.Tensor]
    meta: CodebookMeta
    codebook_id: str


def codebook_id(axes: torch.Tensor, stats: Mapping[str, torch.Tensor]) -> str:
    """sha256 over the format version, D, K and the float32 little-endian bytes of axes and stats.

    Args:
        axes: (K, D) float32, already canonical.
        stats: name → (K,) float32, hashed in name order.
    """
    k, d = axes.shape
    h = hashlib.sha256(f"{FORMAT_TAG}\0v{FORMAT_VERSION}\0D={d}\0K={k}\0".encode())
    h.update(_le_bytes(axes))
    for name in sorted(stats):
        h.update(f"\0{name}\0".encode())
        h.update(_le_bytes(stats[name]))
    return h.hexdigest()


def _le_bytes(t: torch.Tensor) -> memoryview:
    """Little-endian float32 bytes of a tensor, without a copy on little-endian machines."""
    array = t.detach().cpu().contiguous().numpy().astype("<f4", copy=False)
    return memoryview(array).cast("B")


def serialize(
    axes: torch.Tensor, stats: Mapping[str, torch.Tensor], meta: CodebookMeta, cid: str
) -> bytes:
    """The exact bytes of ``codebook.safetensors``: sorted keys, no whitespace, 8-byte padding."""
    meta_json = meta.canonical_json()
    tensors = {"axes": axes, **stats}
    header: dict[str, object] = {
        "__metadata__": {
            "format": FORMAT_TAG,
            "format_version": str(FORMAT_VERSION),
            "id": cid,
            "meta": meta_json,
            "meta_sha256": hashlib.sha256(meta_json.encode()).hexdigest(),
        }
    }
    blobs: list[memoryview] = []
    offset = 0
    for name in sorted(tensors):
        blob = _le_bytes(tensors[name])
        header[name] = {
            "dtype": "F32",
            "shape": list(tensors[name].shape),
            "data_offsets": [offset, offset + len(blob)],
        }
        blobs.append(blob)
        offset += len(blob)
    head = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    return struct.pack("<Q", len(head)) + head + b"".join(blobs)


def sidecar_json(meta: CodebookMeta, cid: str) -> str:
    """The pretty ``codebook.json`` for people and diffs; the same facts as the header."""
    doc = {
        "format": FORMAT_TAG,
        "format_version": FORMAT_VERSION,
        "id": cid,
        "meta": meta.model_dump(mode="json"),
    }
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def resolve_tensor_path(path: str | Path) -> Path:
    """Folder artifact → its ``codebook.safetensors``; a ``.safetensors`` path is kept."""
    p = Path(path)
    if p.is_dir():
        p = p / TENSOR_FILE
    if not p.is_file():
        raise CodebookNotFoundError("no codebook here (expected a folder or .safetensors)", p)
    return p


def read_artifact(path: str | Path) -> ArtifactContent:
    """Read and verify an artifact; every failure is a typed error naming the file.

    Checks, in order: the safetensors header (length, JSON; a file that does not parse and
    starts like a pickle or zip archive is named as one); format tag and version; tensor names,
    dtypes, shapes and offsets; meta hash and schema; the id; finiteness, unit norms and
    canonical signs; the ``.json`` sidecar, when present, against the header.
    """
    tp = resolve_tensor_path(path)
    parsed = parse_safetensors(tp.read_bytes(), tp, CodebookFormatError)
    md = _check_metadata(parsed.metadata, tp)
    names = _check_tensor_entries(parsed.header, len(parsed.data), tp)
    meta_json = md["meta"]
    if hashlib.sha256(meta_json.encode()).hexdigest() != md.get("meta_sha256"):
        raise CodebookIntegrityError("meta does not match its stored sha256: it was altered", tp)
    try:
        meta = CodebookMeta.model_validate_json(meta_json)
    except ValidationError as err:
        raise CodebookFormatError(f"meta does not fit the schema: {err}", tp) from err
    tensors = parsed.tensors(tp, CodebookFormatError)
    axes = tensors["axes"]
    stats = {n: tensors[n] for n in names if n != "axes"}
    if tuple(axes.shape) != (meta.size, meta.dim):
        raise CodebookFormatError(
            f"axes have shape {tuple(axes.shape)} but meta says K={meta.size}, D={meta.dim}", tp
        )
    cid = codebook_id(axes, stats)
    if cid != md["id"]:
        raise CodebookIntegrityError(
            f"stored id {md['id'][:12]} does not match the content ({cid[:12]}): "
            "tensors were altered after writing",
            tp,
        )
    check_axes(axes, stats, tp)
    _check_sidecar(tp.with_suffix(".json"), meta, cid)
    return ArtifactContent(axes=axes, stats=stats, meta=meta, codebook_id=cid)


def _check_metadata(md: dict[str, str], tp: Path) -> dict[str, str]:
    if not md:
        raise CodebookFormatError("no __metadata__: not a geolip codebook", tp)
    if md.get("format") != FORMAT_TAG:
        raise CodebookFormatError(
            f"format tag is {md.get('format')!r}, expected {FORMAT_TAG!r}", tp
        )
    version = md.get("format_version", "")
    if not version.isdigit():
        raise CodebookFormatError(f"format_version {version!r} is not an integer", tp)
    if int(version) > FORMAT_VERSION:
        raise CodebookVersionError(
            f"written with codebook format version {version}; this geolip reads up to "
            f"version {FORMAT_VERSION}: upgrade geolip",
            tp,
        )
    if int(version) != FORMAT_VERSION:
        raise CodebookVersionError(
            f"format version {version} is unknown; this geolip reads version {FORMAT_VERSION}",
            tp,
        )
    for key in ("id", "meta", "meta_sha256"):
        if key not in md:
            raise CodebookFormatError(f"__metadata__ lacks {key!r}", tp)
    return md


def _check_tensor_entries(header: dict, data_len: int, tp: Path) -> list[str]:
    names = sorted(header)
    if "axes" not in names:
        raise CodebookFormatError("no 'axes' tensor", tp)
    end = 0
    for name in names:
        entry = header[name]
        if not isinstance(entry, dict):
            raise CodebookFormatError(f"tensor entry {name!r} is not an object", tp)
        if entry.get("dtype") != "F32":
            raise CodebookFormatError(
                f"tensor {name!r} has dtype {entry.get('dtype')!r}, expected 'F32'", tp
            )
        shape = entry.get("shape")
        ndim = 2 if name == "axes" else 1
        if not (isinstance(shape, list) and len(shape) == ndim):
            raise CodebookFormatError(f"tensor {name!r} has shape {shape!r}, expected {ndim}-D", tp)
        offsets = entry.get("data_offsets")
        if not (isinstance(offsets, list) and len(offsets) == 2 and offsets[0] == end):
            raise CodebookFormatError(f"tensor {name!r} has bad data_offsets {offsets!r}", tp)
        end = offsets[1]
    if end != data_len:
        kind = "truncated" if end > data_len else "trailing bytes"
        raise CodebookFormatError(f"{kind}: tensors need {end} data bytes, file has {data_len}", tp)
    k = header["axes"]["shape"][0]
    for name in names:
        if name != "axes" and header[name]["shape"] != [k]:
            raise CodebookFormatError(
                f"stat {name!r} has shape {header[name]['shape']}, not [{k}]", tp
            )
    return names


def check_axes(
    axes: torch.Tensor, stats: Mapping[str, torch.Tensor], where: Path | None = None
) -> None:
    """Raise :class:`CodebookValidationError` unless axes are finite, unit and sign-canonical."""
    if axes.ndim != 2 or axes.shape[0] < 1 or axes.shape[1] < 2:
        raise CodebookValidationError(f"axes must be (K>=1, D>=2), got {tuple(axes.shape)}", where)
    # a NaN or Inf anywhere in a row makes its norm non-finite, so one pass checks both
    norms = torch.linalg.vector_norm(axes, dim=1)
    bad = (~torch.isfinite(norms)).nonzero().flatten()
    if len(bad):
        raise CodebookValidationError(f"axes {bad[:8].tolist()} contain NaN or Inf", where)
    off = ((norms - 1).abs() > UNIT_TOLERANCE).nonzero().flatten()
    if len(off):
        i = int(off[0])
        raise CodebookValidationError(
            f"{len(off)} axes are not unit (axis {i} has norm {norms[i].item():.7g})", where
        )
    flipped = non_canonical_rows(axes)
    if len(flipped):
        raise CodebookValidationError(f"axes {flipped[:8].tolist()} are not sign-canonical", where)
    for name, t in stats.items():
        if not torch.isfinite(t).all():
            raise CodebookValidationError(f"stat {name!r} contains NaN or Inf", where)


def _check_sidecar(path: Path, meta: CodebookMeta, cid: str) -> None:
    if not path.exists():
        return
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        side_meta = CodebookMeta.model_validate(doc["meta"])
        side_id = doc["id"]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValidationError) as err:
        raise CodebookFormatError(f"sidecar is not a codebook meta document ({err})", path) from err
    if side_id != cid or side_meta != meta:
        raise CodebookIntegrityError(
            "sidecar JSON disagrees with codebook.safetensors (edited or from another codebook)",
            path,
        )


def write_artifact(path: str | Path, payload: bytes, sidecar: str, cid: str) -> Path:
    """Write an artifact so that a failure never leaves a partial or unreadable one.

    A folder path is written as a sibling temporary folder, read back through
    :func:`read_artifact` (which must find the id ``cid``) and renamed into place; an existing
    artifact is swapped out only after the new one is complete. A ``*.safetensors`` path writes
    ``NAME.safetensors`` and ``NAME.json``, each through a temporary file that is read back
    before its rename.

    Returns:
        The path of the written ``.safetensors`` file.
    """
    target = Path(path)
    if target.suffix == ".safetensors":
        meta = CodebookMeta.model_validate_json(json.dumps(json.loads(sidecar)["meta"]))
        atomic_write(target, payload, verify=lambda tmp: _expect_id(tmp, cid))
        atomic_write(
            target.with_suffix(".json"),
            sidecar.encode(),
            verify=lambda tmp: _check_sidecar(tmp, meta, cid),
        )
        return target
    foreign = not target.is_dir() or any(target.iterdir()) if target.exists() else False
    if foreign and not (target / TENSOR_FILE).exists():
        raise CodebookFormatError("exists and is not a codebook artifact; not overwriting", target)
    files = {TENSOR_FILE: payload, META_FILE: sidecar.encode()}
    write_folder(target, files, verify=lambda tmp: _expect_id(tmp, cid))
    return target / TENSOR_FILE


def _expect_id(path: Path, cid: str) -> None:
    """Read ``path`` back with every check; its id must be ``cid``."""
    found = read_artifact(path).codebook_id
    if found != cid:
        raise CodebookIntegrityError(f"read back id {found[:12]}, wrote {cid[:12]}", path)
