"""A fake Hub on loopback for every test here; the real huggingface_hub client talks to it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_hub import FakeHub, serve_fake_hub


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeHub]:
    with serve_fake_hub(monkeypatch, tmp_path / "geolip-cache") as running:
        yield running
