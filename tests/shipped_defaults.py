"""The GLFM, SVAE-transformer and CV-battery defaults shipped in ``geolip/data/pretrained``, as
docs/pretrained.md documents them, and what each computes (for the pretrained and Hub tests)."""

from __future__ import annotations

import torch

from geolip.producers.glfm import GLFM
from geolip.producers.pretrained import PretrainedModule

FAMILY_DEFAULTS: dict[str, tuple[str, dict[str, int], int]] = {
    "glfm-shapes": (
        "glfm-v4",
        {"width": 32, "hidden": 128, "n_anchors": 64, "n_blocks": 2},
        486_179,
    ),
    "svae-gaussian": ("svae-transformer", {}, 154_452),
    "cv-battery-noise": ("cv-battery", {}, 370_224),
}
"""name → (preset, model fields changed from it, parameter count)."""


def images(n: int = 2, size: int = 32, seed: int = 0) -> torch.Tensor:
    """(n, 3, size, size) standard normal images."""
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def family_outputs(model: PretrainedModule, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """``rows`` (encode_rows of x) and the family's own output on x (B, 3, 32, 32): GLFM's
    ``velocity`` at t = 0.5 for classes 0, 1, ..., the others' ``recon``."""
    out = {"rows": model.encode_rows(x)}
    if isinstance(model, GLFM):
        labels = torch.arange(len(x)) % model.config.n_classes
        out["velocity"] = model(x, torch.full((len(x),), 0.5), labels)
    else:
        out["recon"] = model.reconstruct(x)
    return out
