"""Result folders of the cross-modal and soup studies: tensors + one JSON document, with lineage.

    FOLDER/result.safetensors   the fitted maps (float64), metadata: format, kind, version
    FOLDER/result.json          the measured numbers, settings and lineage (pretty JSON)

Both are written together through :func:`geolip._files.write_folder` and read back by
:func:`load_result` before the folder is renamed into place, so a folder is either absent,
the previous one, or complete and readable. Nothing is pickled.
"""

from __future__ import annotations

import json
import statistics
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save

from geolip._files import write_folder
from geolip._safetensors import load_tensors
from geolip._version import __version__
from geolip.errors import CheckpointError, CheckpointNotFoundError

RESULT_FORMAT = "geolip.study"
RESULT_VERSION = 1
TENSORS_FILE, DOCUMENT_FILE = "result.safetensors", "result.json"


def lineage(operation: str, parents: dict[str, Any]) -> dict[str, Any]:
    """The lineage block every study document carries: what made it, from what, when."""
    return {
        "operation": operation,
        "parents": parents,
        "geolip_version": __version__,
        "created_at": datetime.now(timezone.utc).isoformat(),
    }


def spread(values: list[float]) -> dict[str, Any]:
    """``{"values", "mean", "std"}`` of the per-seed values (sample std; 0 for one value)."""
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"values": values, "mean": statistics.fmean(values), "std": std}


def save_result(
    folder: str | Path, kind: str, tensors: dict[str, torch.Tensor], document: dict[str, Any]
) -> Path:
    """Write ``tensors`` and ``document`` as the result folder (module docstring)."""
    state = {k: v.detach().cpu().clone().contiguous() for k, v in tensors.items()}
    metadata = {"format": RESULT_FORMAT, "kind": kind, "version": str(RESULT_VERSION)}
    doc = {"format": RESULT_FORMAT, "kind": kind, "version": RESULT_VERSION, **document}
    files = {
        TENSORS_FILE: save(state, metadata=metadata),
        DOCUMENT_FILE: (json.dumps(doc, indent=2, sort_keys=True, allow_nan=False) + "\n").encode(),
    }
    return write_folder(folder, files, verify=lambda tmp: load_result(tmp, kind))


def load_result(folder: str | Path, kind: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, document) of a result folder of ``kind``.

    Raises:
        CheckpointNotFoundError: a file is missing.
        CheckpointError: not a geolip study folder of ``kind``, another version, or tensors and
            document that disagree on kind.
    """
    root = Path(folder)
    for name in (TENSORS_FILE, DOCUMENT_FILE):
        if not (root / name).is_file():
            raise CheckpointNotFoundError(f"missing {name}: not a geolip {kind} result", root)
    tensors, meta = load_tensors(
        root / TENSORS_FILE, lambda problem, p: CheckpointError(f"unreadable ({problem})", p)
    )
    try:
        doc = json.loads((root / DOCUMENT_FILE).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"unreadable result document ({err})", root / DOCUMENT_FILE) from err
    for where, found in ((TENSORS_FILE, meta), (DOCUMENT_FILE, doc)):
        if not isinstance(found, dict) or found.get("format") != RESULT_FORMAT:
            raise CheckpointError("not a geolip study result", root / where)
        if found.get("kind") != kind:
            raise CheckpointError(
                f"holds a {found.get('kind')!r} result, not {kind!r}", root / where
            )
        if str(found.get("version")) != str(RESULT_VERSION):
            raise CheckpointError(f"result version {found.get('version')} is not 1", root / where)
    return tensors, doc
