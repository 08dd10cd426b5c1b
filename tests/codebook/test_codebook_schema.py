"""The committed JSON Schema of the meta is the one the code validates against."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from geolip.codebook.schema import CodebookMeta, meta_json_schema

SCHEMA = Path(__file__).parent.parent.parent / "docs" / "codebook_meta.schema.json"


def test_docs_schema_is_current() -> None:
    assert SCHEMA.read_text() == meta_json_schema(), (
        "regenerate with: python -m geolip.codebook.schema > docs/codebook_meta.schema.json"
    )


def test_meta_refuses_unknown_fields_and_bad_values() -> None:
    base = {"name": "x", "dim": 3, "size": 2, "geolip_version": "0"}
    CodebookMeta(**base)
    with pytest.raises(ValidationError):
        CodebookMeta(**base, colour="red")
    with pytest.raises(ValidationError):
        CodebookMeta(**{**base, "dim": 1})
    with pytest.raises(ValidationError):
        CodebookMeta(**base, lineage={"operation": "teleport"})


def test_canonical_json_is_sorted_compact_and_round_trips() -> None:
    meta = CodebookMeta(name="é", dim=3, size=2, geolip_version="0", extra={"b": 1, "a": [1.5]})
    text = meta.canonical_json()
    assert " " not in text and text.isascii()
    assert CodebookMeta.model_validate_json(text) == meta
    doc = json.loads(text)
    assert list(doc) == sorted(doc)
