"""The batched thin-SVD routes compared by the GPU benchmarks, and how their error is measured.

Every route maps M (B, V, D) to U (B, V, D), S (B, D), Vt (B, D, D):
- ``fused``: geolip's Triton kernels (``gram_svd(method="fused")``);
- ``eigh``: float64 Gram + ``torch.linalg.eigh``, chunked (``gram_svd(method="eigh")``);
- ``gesvda``: ``torch.linalg.svd(driver="gesvda")`` on chunks of 16,384 (cuSOLVER fails on one
  call of ≥ 65,536 matrices);
- ``svd``: default ``torch.linalg.svd``, one call.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from geolip.solvers.linalg import EIGH_CHUNK, gram_svd

SVD = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


def _gesvda(m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    parts = [torch.linalg.svd(c, full_matrices=False, driver="gesvda") for c in m.split(EIGH_CHUNK)]
    return tuple(torch.cat(p) for p in zip(*parts, strict=True))  # type: ignore[return-value]


ROUTES: dict[str, SVD] = {
    "fused": lambda m: gram_svd(m, method="fused"),
    "eigh": lambda m: gram_svd(m, method="eigh"),
    "gesvda": _gesvda,
    "svd": lambda m: tuple(torch.linalg.svd(m, full_matrices=False)),  # type: ignore[dict-item]
}


@torch.no_grad()
def svd_errors(
    m: torch.Tensor, u: torch.Tensor, s: torch.Tensor, vt: torch.Tensor, chunk: int = 131_072
) -> dict[str, float]:
    """Max relative reconstruction error ‖U S Vt − M‖/‖M‖, max |UᵀU − I|, max |Vt Vtᵀ − I|
    and the count of non-finite outputs, computed in float64 chunk by chunk."""
    d = m.shape[-1]
    eye = torch.eye(d, dtype=torch.float64, device=m.device)
    rec = orth = vorth = 0.0
    bad = 0
    for sl in range(0, m.shape[0], chunk):
        mm, uu, ss, vv = (t[sl : sl + chunk].double() for t in (m, u, s, vt))
        bad += int((~torch.isfinite(uu)).sum() + (~torch.isfinite(ss)).sum())
        norm = mm.flatten(1).norm(dim=1).clamp_min(1e-300)
        r = ((uu * ss.unsqueeze(-2)) @ vv - mm).flatten(1).norm(dim=1) / norm
        rec = max(rec, r.nan_to_num(float("inf")).max().item())
        orth = max(orth, (uu.mT @ uu - eye).abs().nan_to_num(float("inf")).max().item())
        vorth = max(vorth, (vv @ vv.mT - eye).abs().nan_to_num(float("inf")).max().item())
    return {"reconstruction": rec, "orthogonality_u": orth, "orthogonality_vt": vorth, "bad": bad}


def unit_rows(b: int, v: int, d: int, seed: int, device: str = "cuda") -> torch.Tensor:
    """(b, v, d) float32 Gaussian rows normalised onto the sphere (the sphere-solver's M)."""
    gen = torch.Generator(device=device).manual_seed(seed)
    m = torch.randn(b, v, d, generator=gen, device=device)
    return torch.nn.functional.normalize(m, dim=-1)
