"""The fused Triton SVD against float64 references: on the GPU when there is one, else through
Triton's interpreter on the CPU (same kernel source, numpy semantics)."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
pytest.importorskip("triton")

from geolip.solvers.linalg import fused_svd_supported, gram_svd

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
# the interpreter runs a kernel as numpy, ~10⁴× slower: smaller V on the CPU
SHAPES = (
    [(48, 4), (32, 3), (20, 5), (24, 8), (64, 16)]
    if DEVICE == "cuda"
    else [(48, 4), (9, 3), (7, 5), (10, 8), (18, 16)]
)
# the interpreter takes seconds a case: on the CPU, `-m "not slow"` keeps one small shape
FAST_SHAPE = (9, 3)


def shape_cases(shapes: list[tuple[int, int]]) -> list[object]:
    """``shapes`` as parameters, all but FAST_SHAPE marked slow when the kernels interpret."""
    slow = () if DEVICE == "cuda" else (pytest.mark.slow,)
    return [pytest.param(v, d, marks=() if (v, d) == FAST_SHAPE else slow) for v, d in shapes]


def slow_on_cpu(test: Callable[..., None]) -> Callable[..., None]:
    """The other checks of the kernels interpret for seconds each on the CPU: full run only."""
    return pytest.mark.slow(test) if DEVICE == "cpu" else test


def adversarial(v: int, d: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Unit-row matrices plus the hard cases: repeated rows (rank 1), a zero column (rank
    D − 1), two equal singular values, a near-equal pair, scales 1e-20 and 1e20, all zero."""
    gen = torch.Generator().manual_seed(v * 100 + d)
    m = torch.nn.functional.normalize(torch.randn(12, v, d, generator=gen, dtype=dtype), dim=-1)
    m[0] = m[0, :1].expand(v, d)
    m[1, :, -1] = 0
    q, _ = torch.linalg.qr(torch.randn(v, d, generator=gen, dtype=torch.float64))
    w, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    sv = torch.linspace(3, 1, d, dtype=torch.float64)
    sv[1] = sv[0]
    m[2] = (q * sv @ w.mT).to(dtype)
    sv[1] = sv[0] * (1 - 1e-6)
    m[3] = (q * sv @ w.mT).to(dtype)
    m[4] *= 1e-20
    m[5] *= 1e20
    m[6] = 0
    return m.to(DEVICE)


def one_program_per_kernel(d: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """On the CPU above D = 4 (where the launch shapes spread a matrix over threads), shapes
    holding 16 matrices a program: the interpreter's time is per program (the layouts the
    shapes choose on a GPU do not exist there)."""
    from geolip.solvers import _svd_triton as svd_triton

    if d > svd_triton.ONE_SIDED_ABOVE and DEVICE == "cpu":
        one = svd_triton.Launch(16, 1, 4)
        dp = svd_triton.kernel_config(d).dp
        monkeypatch.setattr(
            svd_triton, "kernel_config", lambda d: svd_triton.KernelConfig(dp, one, one, one)
        )


@pytest.mark.slow
@pytest.mark.parametrize(("v", "d"), shape_cases(SHAPES))
def test_forward_matches_float64_reference_on_hard_inputs(
    v: int, d: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    one_program_per_kernel(d, monkeypatch)
    m = adversarial(v, d)
    u, s, vt = gram_svd(m, method="fused")
    m64, u64, s64, vt64 = (t.double().cpu() for t in (m, u, s, vt))
    eye = torch.eye(d, dtype=torch.float64)
    norm = m64.flatten(1).norm(dim=1).clamp_min(1e-300)
    rec = ((u64 * s64.unsqueeze(-2)) @ vt64 - m64).flatten(1).norm(dim=1) / norm
    assert rec.max() < 1e-6
    assert (u64.mT @ u64 - eye).abs().max() < 1e-6  # also for rank-deficient and zero M
    assert (vt64 @ vt64.mT - eye).abs().max() < 1e-6
    ref = torch.linalg.svdvals(m64)
    assert ((s64 - ref).abs() / ref[:, :1].clamp_min(1e-300)).max() < 1e-6
    assert torch.all(s64[:, :-1] >= s64[:, 1:])


@pytest.mark.parametrize(("v", "d"), shape_cases([*SHAPES[:3], SHAPES[-1]]))
@pytest.mark.parametrize(
    "dtype",  # float32 (both kernels) stays in `-m "not slow"` on the CPU, float64 is slow
    [
        pytest.param(torch.float64, marks=() if DEVICE == "cuda" else pytest.mark.slow),
        torch.float32,
    ],
)
def test_backward_agrees_with_the_eigh_path(
    v: int, d: int, dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch
) -> None:
    one_program_per_kernel(d, monkeypatch)
    gen = torch.Generator().manual_seed(7)
    m = torch.nn.functional.normalize(torch.randn(6, v, d, generator=gen, dtype=dtype), dim=-1)
    m[0, 1] = m[0, 0]
    w_u, w_s = torch.randn(6, v, d, generator=gen, dtype=dtype), torch.randn(6, d, dtype=dtype)
    w_g = torch.randn(6, d, d, generator=gen, dtype=dtype)

    def grad(method: str) -> torch.Tensor:
        x = m.clone().to(DEVICE).requires_grad_(True)
        u, s, vt = gram_svd(x, method=method)
        rec = (u * s.unsqueeze(-2)) @ vt
        proj = u @ u.mT
        gram = (vt.mT * s.unsqueeze(-2).square()) @ vt
        wu, ws, wg = w_u.to(DEVICE), w_s.to(DEVICE), w_g.to(DEVICE)
        loss = (rec * wu).sum() + (s * ws).sum() + 1e-2 * (proj * (wu @ wu.mT)).sum()
        (loss + (gram * wg).sum()).backward()
        return x.grad.double().cpu()

    eigh, fused = grad("eigh"), grad("fused")
    assert torch.isfinite(fused).all()
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    assert (eigh - fused).norm() / eigh.norm() < tol


@slow_on_cpu
def test_gradcheck_of_a_gauge_invariant_loss() -> None:
    gen = torch.Generator().manual_seed(3)
    shape = (3, 7, 3) if DEVICE == "cuda" else (1, 4, 2)
    m = torch.randn(*shape, generator=gen, dtype=torch.float64).to(DEVICE).requires_grad_(True)

    def f(x: torch.Tensor) -> torch.Tensor:
        u, s, vt = gram_svd(x, method="fused")
        return (u * s.sqrt().unsqueeze(-2)) @ vt

    assert torch.autograd.gradcheck(f, (m,), eps=1e-6, atol=1e-7)


def test_support_and_refusals() -> None:
    assert fused_svd_supported(48, 4) and fused_svd_supported(256, 16)
    assert not fused_svd_supported(256, 17) and not fused_svd_supported(8, 9)
    with pytest.raises(ValueError, match="fused kernels take"):
        gram_svd(torch.randn(2, 300, 17), method="fused")
    with pytest.raises(ValueError, match="method must be"):
        gram_svd(torch.randn(2, 8, 4), method="cusolver")  # type: ignore[arg-type]


@slow_on_cpu
@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**16), d=st.sampled_from([2, 3, 4]), v=st.integers(4, 9))
def test_singular_values_are_invariant_and_vectors_equivariant_under_rotation(
    seed: int, d: int, v: int
) -> None:
    """M → P M R with orthogonal P (V×V), R (D×D): S is unchanged, U → P U and Vt → Vt R up to
    the sign of each singular pair; also under a row permutation with sign flips (P signed)."""
    gen = torch.Generator().manual_seed(seed)
    m = torch.randn(3, v, d, generator=gen, dtype=torch.float64)
    p = torch.linalg.qr(torch.randn(v, v, generator=gen, dtype=torch.float64)).Q
    r = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64)).Q
    u, s, vt = (t.cpu() for t in gram_svd(m.to(DEVICE), method="fused"))
    u2, s2, vt2 = (t.cpu() for t in gram_svd((p @ m @ r).to(DEVICE), method="fused"))
    assert torch.allclose(s2, s, rtol=1e-10, atol=1e-12)
    signs = torch.sign(((vt @ r) * vt2).sum(-1))  # (3, D): ±1 per singular pair
    assert torch.allclose(vt2, signs.unsqueeze(-1) * (vt @ r), atol=1e-8)
    assert torch.allclose(u2, (p @ u) * signs.unsqueeze(-2), atol=1e-8)


def _with_condition(v: int, d: int, ratio: float, n: int, seed: int) -> torch.Tensor:
    """(n, v, d) float32 matrices with σ_min/σ_max = ratio, singular values geometric."""
    gen = torch.Generator().manual_seed(seed)
    q = torch.linalg.qr(torch.randn(n, v, d, generator=gen, dtype=torch.float64)).Q
    w = torch.linalg.qr(torch.randn(n, d, d, generator=gen, dtype=torch.float64)).Q
    sv = ratio ** torch.linspace(0, 1, d, dtype=torch.float64)
    return ((q * sv) @ w.mT).float()


@slow_on_cpu
def test_orthonormal_on_either_side_of_the_conditioning_switch() -> None:
    """Matrices just above WELL_CONDITIONED take the fast kernel's U = M Q / S, those just below
    are flagged and re-orthonormalised by the robust kernel, in one batch and in programs of
    their own: all give UᵀU = I and the float64 reference's S."""
    from geolip.solvers._svd_triton import WELL_CONDITIONED

    assert 3e-4 < WELL_CONDITIONED < 3e-3
    v, d = (48, 4) if DEVICE == "cuda" else (9, 4)
    well = _with_condition(v, d, 3e-3, 70, seed=11)
    ill = _with_condition(v, d, 3e-4, 70, seed=12)
    mixed = torch.cat([well[:64], ill[:3], well[64:], ill[3:]])  # first program: 3 flagged
    for m in (well, ill, mixed):
        u, s, vt = (t.double().cpu() for t in gram_svd(m.to(DEVICE), method="fused"))
        m64 = m.double()
        assert (u.mT @ u - torch.eye(d, dtype=torch.float64)).abs().max() < 1e-6
        rec = (u * s.unsqueeze(-2)) @ vt - m64
        assert (rec.flatten(1).norm(dim=1) / m64.flatten(1).norm(dim=1)).max() < 1e-6
        ref = torch.linalg.svdvals(m64)
        assert ((s - ref).abs() / ref[:, :1]).max() < 1e-6


@slow_on_cpu
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_launch_shape_does_not_change_the_result(dtype: torch.dtype) -> None:
    """One thread per matrix, several threads per matrix, and other row-tile heights agree.
    Float64 input takes the robust kernel alone, so the comparison sees the kernels, not the
    rounding to float32; float32 input takes both, flagged matrices in other programs."""
    from geolip.solvers._svd_triton import KernelConfig, Launch, fused_svd_forward, kernel_config
    from geolip.solvers.linalg import SINGULAR_FLOOR_RTOL

    v, d = (20, 5) if DEVICE == "cuda" else (7, 5)
    gen = torch.Generator().manual_seed(5)
    m = torch.nn.functional.normalize(torch.randn(12, v, d, generator=gen, dtype=dtype), dim=-1)
    m[0] = _with_condition(v, d, 1e-4, 1, seed=5)[0].to(dtype)  # flagged by the fast kernel
    m[9] = _with_condition(v, d, 1e-5, 1, seed=6)[0].to(dtype)
    m = m.to(DEVICE)
    other = KernelConfig(8, Launch(8, 1, 2), Launch(4, 1, 1), Launch(8, 1, 2))
    outs = [fused_svd_forward(m, SINGULAR_FLOOR_RTOL, cfg) for cfg in (kernel_config(d), other)]
    # the row tiles change the order of the float64 sums: agreement to rounding, not bitwise
    tol = 1e-9 if dtype == torch.float64 else 1e-5
    for a, b in zip(*outs, strict=True):
        assert (a - b).abs().max() < tol


def _fast_kernel_flags(m: torch.Tensor, launch: object = None) -> torch.Tensor:
    """The fast forward kernel alone on M (its own launch shape unless ``launch``): its
    ill/unsettled flags (B,)."""
    from geolip.solvers import _svd_triton as svd_triton

    n, _, d = m.shape
    ill = torch.full((n,), 7, dtype=torch.int8, device=m.device)
    outputs = (torch.empty_like(m), m.new_empty(n, d), m.new_empty(n, d, d), ill)
    fast = launch or svd_triton.kernel_config(d).forward
    svd_triton.launch_forward(m, outputs, 1e-12, fast, robust=False, only_flagged=False)
    return ill.cpu()


@slow_on_cpu
def test_one_sided_sweeps_settle_or_hand_the_matrix_to_the_robust_kernel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """D > 8: random matrices settle within ONE_SIDED_MAX_SWEEPS and take the fast path, a zero
    matrix is flagged; with a single sweep allowed, every random matrix is flagged, and the
    robust kernel still returns the float64 reference's decomposition."""
    from geolip.solvers import _svd_triton as svd_triton

    one_program_per_kernel(16, monkeypatch)
    v, d = (64, 16) if DEVICE == "cuda" else (18, 16)
    gen = torch.Generator().manual_seed(8)
    m = torch.nn.functional.normalize(torch.randn(6, v, d, generator=gen), dim=-1)
    m[5] = 0
    m = m.to(DEVICE)
    assert _fast_kernel_flags(m).tolist() == [0, 0, 0, 0, 0, 1]
    monkeypatch.setattr(svd_triton, "ONE_SIDED_MAX_SWEEPS", 1)
    assert _fast_kernel_flags(m).tolist() == [1] * 6
    u, s, vt = (t.double().cpu() for t in gram_svd(m, method="fused"))
    m64 = m.double().cpu()
    assert (u.mT @ u - torch.eye(d, dtype=torch.float64)).abs().max() < 1e-6
    rec = ((u * s.unsqueeze(-2)) @ vt - m64).flatten(1).norm(dim=1)
    assert (rec[:5] / m64[:5].flatten(1).norm(dim=1)).max() < 1e-6 and rec[5] == 0
    ref = torch.linalg.svdvals(m64)
    assert ((s - ref).abs() / ref[:, :1].clamp_min(1e-300)).max() < 1e-6


@slow_on_cpu
def test_two_sided_sweeps_stop_only_once_settled(monkeypatch: pytest.MonkeyPatch) -> None:
    """D ≤ 4: the sweeps that stop once every off-diagonal is below JACOBI_TOL give the same
    decomposition, to float32 rounding, as the full count of sweeps (JACOBI_TOL = 0 never
    settles), on random, near-degenerate and ill-conditioned matrices."""
    from geolip.solvers import _svd_triton as svd_triton
    from geolip.solvers.linalg import SINGULAR_FLOOR_RTOL

    v, d = (48, 4) if DEVICE == "cuda" else (9, 4)
    m = torch.cat([adversarial(v, d).cpu(), _with_condition(v, d, 2e-3, 4, seed=3)]).to(DEVICE)
    settled = svd_triton.fused_svd_forward(m, SINGULAR_FLOOR_RTOL)
    monkeypatch.setattr(svd_triton, "JACOBI_TOL", 0.0)
    full = svd_triton.fused_svd_forward(m, SINGULAR_FLOOR_RTOL)
    u, s, vt = settled
    signs = torch.sign((vt * full[2]).sum(-1, keepdim=True))  # the pairs' signs may differ
    assert (s - full[1]).abs().max() <= 1e-6 * s[:, :1].clamp_min(1e-30).max()
    live = s[:, -1] > 1e-3 * s[:, 0]  # vectors are defined where σ are apart from zero
    assert (vt[live] - signs[live] * full[2][live]).abs().max() < 1e-5
    assert (u[live] - full[0][live] * signs[live].mT).abs().max() < 1e-5


@slow_on_cpu
def test_float64_takes_the_fast_kernel_when_well_conditioned() -> None:
    """Float64 M with σ_min/σ_max above WELL_CONDITIONED_FLOAT64 is not flagged and comes back
    orthonormal to 1e-13 with the reference's S; below it (but above the float32 threshold)
    it is flagged in float64 only, and the robust kernel still gives float64 accuracy."""
    from geolip.solvers import _svd_triton as svd_triton
    from geolip.solvers.linalg import SINGULAR_FLOOR_RTOL

    assert svd_triton.WELL_CONDITIONED < 1e-2 < svd_triton.WELL_CONDITIONED_FLOAT64
    for v, d in ((9, 4), (18, 16)) if DEVICE == "cpu" else ((48, 4), (64, 16)):
        cfg = svd_triton.kernel_config(d)
        if d > svd_triton.ONE_SIDED_ABOVE and DEVICE == "cpu":  # one interpreted program
            one = svd_triton.Launch(16, 1, 4)
            cfg = svd_triton.KernelConfig(cfg.dp, one, one, one)
        well = _with_condition(v, d, 0.5, 3, seed=21).double()
        mid = _with_condition(v, d, 1e-2, 3, seed=22).double()
        m = torch.cat([well, mid]).to(DEVICE)
        assert _fast_kernel_flags(m, cfg.forward).tolist() == [0, 0, 0, 1, 1, 1]
        assert _fast_kernel_flags(m.float(), cfg.forward).tolist() == [0] * 6
        u, s, vt = (t.cpu() for t in svd_triton.fused_svd_forward(m, SINGULAR_FLOOR_RTOL, cfg))
        m64 = m.cpu()
        eye = torch.eye(d, dtype=torch.float64)
        assert (u.mT @ u - eye).abs().max() < 1e-13
        rec = ((u * s.unsqueeze(-2)) @ vt - m64).flatten(1).norm(dim=1)
        assert (rec / m64.flatten(1).norm(dim=1)).max() < 1e-13
        ref = torch.linalg.svdvals(m64)
        assert ((s - ref).abs() / ref[:, :1]).max() < 1e-13
