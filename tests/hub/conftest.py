"""A fake Hub on loopback for every test here; the real huggingface_hub client talks to it.

Every test here gets its own Hub store under tmp_path (``GEOLIP_HUB_CACHE``), so nothing is
ever written to, or read from, the real ``~/.cache/geolip/hub``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_hub import FakeHub, serve_fake_hub


@pytest.fixture(autouse=True)
def hub_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """This test's Hub store: ``GEOLIP_HUB_CACHE`` pointed at a fresh folder."""
    store = tmp_path / "geolip-cache"
    monkeypatch.setenv("GEOLIP_HUB_CACHE", str(store))
    return store


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, hub_cache: Path) -> Iterator[FakeHub]:
    with serve_fake_hub(monkeypatch, hub_cache) as running:
        yield running
