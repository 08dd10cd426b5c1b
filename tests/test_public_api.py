"""The curated public surface: every listed name resolves, and importing geolip stays cheap."""

from __future__ import annotations

import subprocess
import sys

import geolip


def test_every_public_name_resolves_to_the_object_of_its_module() -> None:
    for name in geolip.__all__:
        value = getattr(geolip, name)
        assert value is not None, name
    assert geolip.SphereSolver.__module__ == "geolip.producers.sphere_solver"
    assert geolip.gram_svd.__module__ == "geolip.solvers.linalg"
    assert sorted(dir(geolip)) == sorted(geolip.__all__)


def test_import_geolip_does_not_import_torch() -> None:
    code = "import sys, geolip; geolip.__version__; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
