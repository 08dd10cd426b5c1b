"""Suite-wide settings: no network, bounded hypothesis runs, caches and HOME under a tmp folder."""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "geolip", deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow]
)
# `-m "not slow"` (the fast subset) draws fewer examples; the full run keeps the 40 above
settings.register_profile("geolip-fast", settings.get_profile("geolip"), max_examples=10)
settings.load_profile("geolip")

_ISOLATED_ENV: dict[str, str | None] = {}
"""The variables ``pytest_configure`` replaced, with their values before, for unconfigure."""
_DROPPED_ENV = ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_ASSETS_CACHE", "HF_XET_CACHE")


def pytest_configure(config: pytest.Config) -> None:
    """Before anything is collected: HOME, the XDG cache, matplotlib's and Hugging Face's
    folders and geolip's cache all point into one temporary folder for the whole session, so
    neither this process nor a subprocess it starts writes to the real home (per-test
    ``GEOLIP_CACHE_DIR`` comes on top, from ``_tmp_geolip_cache``)."""
    markexpr = config.getoption("markexpr", default="") or ""
    if "not slow" in markexpr and not config.getoption("hypothesis_profile", default=None):
        settings.load_profile("geolip-fast")
    root = Path(tempfile.mkdtemp(prefix="geolip-tests-env-"))
    values = {
        "HOME": root / "home",
        "XDG_CACHE_HOME": root / "xdg-cache",
        "MPLCONFIGDIR": root / "matplotlib",
        "HF_HOME": root / "huggingface",
        "GEOLIP_CACHE_DIR": root / "geolip-cache",
    }
    for name, path in values.items():
        path.mkdir()
        _ISOLATED_ENV.setdefault(name, os.environ.get(name))
        os.environ[name] = str(path)
    for name in _DROPPED_ENV:
        _ISOLATED_ENV.setdefault(name, os.environ.pop(name, None))
    _ISOLATED_ENV["_root"] = str(root)


def pytest_unconfigure(config: pytest.Config) -> None:
    root = _ISOLATED_ENV.pop("_root", None)
    for name, value in _ISOLATED_ENV.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    _ISOLATED_ENV.clear()
    if root:
        shutil.rmtree(root, ignore_errors=True)


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
    for name in [k for k in os.environ if k.startswith("GEOLIP_") and k.endswith("_CACHE")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("GEOLIP_CACHE_DIR", str(tmp_path_factory.mktemp("geolip-cache")))
