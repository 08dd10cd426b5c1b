"""Suite-wide settings: no network, bounded hypothesis runs."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "geolip", deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("geolip")

_real_connect = socket.socket.connect


def _loopback_only(self: socket.socket, address: object) -> None:
    if self.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0] if isinstance(address, tuple) else str(address)
        try:
            loop = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loop = host == "localhost"
        if not loop:
            raise OSError(f"network access blocked in tests: {address!r}")
    _real_connect(self, address)


@pytest.fixture(autouse=True)
def _block_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never touch the internet; loopback stays open for local test servers."""
    monkeypatch.setattr(socket.socket, "connect", _loopback_only)


@pytest.fixture(autouse=True)
def _tmp_geolip_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Every cache of geolip (``geolip._files.cache_dir``) under a fresh temporary folder, never
    the real ``~/.cache/geolip``; per-kind overrides set outside the suite are dropped."""
    import os

    for name in [k for k in os.environ if k.startswith("GEOLIP_") and k.endswith("_CACHE")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("GEOLIP_CACHE_DIR", str(tmp_path_factory.mktemp("geolip-cache")))
