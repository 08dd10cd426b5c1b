"""Gram-eigh thin SVD: forward against LAPACK, degenerate spectra, analytic backward, chunking."""

from __future__ import annotations

import pytest
import scipy.linalg
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import F64, gaussian, gen, random_orthogonal, random_rows, random_signs, seeds

from geolip.solvers.linalg import DEGENERACY_EPS, gram_svd, sphere_normalize

SHAPES = [(v, d) for v in (4, 16, 48, 256) for d in (3, 4, 5, 8, 16) if v >= d]


def with_spectrum(v: int, s: list[float], g: torch.Generator) -> torch.Tensor:
    """(V, D) float64 matrix Q diag(s) Rᵀ with Haar-random orthonormal Q and R."""
    d = len(s)
    q = random_orthogonal(v, g, 1.0)[:, :d]
    r = random_orthogonal(d, g, 1.0)
    return q * torch.tensor(s, dtype=F64) @ r.T


def flat_frame(v: int, d: int) -> torch.Tensor:
    """(V, D) unit rows of ±1/√D with orthogonal columns: every σ is exactly √(V/D)."""
    return sphere_normalize(torch.from_numpy(scipy.linalg.hadamard(v)[:, :d]).to(F64))


def product(u: torch.Tensor, s: torch.Tensor, vt: torch.Tensor) -> torch.Tensor:
    return u * s.unsqueeze(-2) @ vt


def gauge_invariant(m: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Functions of the SVD that do not depend on the signs or rotations within equal σ."""
    u, s, vt = gram_svd(m)
    return s, product(u, s, vt), u @ u.mT, vt.mT @ torch.diag_embed(torch.sin(s)) @ vt


def reference_gauge_invariant(m: torch.Tensor) -> tuple[torch.Tensor, ...]:
    u, s, vt = torch.linalg.svd(m, full_matrices=False)
    return s, product(u, s, vt), u @ u.mT, vt.mT @ torch.diag_embed(torch.sin(s)) @ vt


def eye_error(x: torch.Tensor) -> float:
    """max |XᵀX − I| over a batch of (…, N, D) matrices."""
    return (x.mT @ x - torch.eye(x.shape[-1], dtype=x.dtype)).abs().max().item()


# --------------------------------------------------------------------------------------------
# Forward


@pytest.mark.slow
@pytest.mark.parametrize(("v", "d"), SHAPES)
@settings(max_examples=4)
@given(seed=seeds, dtype=st.sampled_from([torch.float32, F64]))
def test_forward_matches_lapack(v: int, d: int, seed: int, dtype: torch.dtype) -> None:
    m = gaussian(3 * v, d, gen(seed)).reshape(3, v, d).to(dtype)
    u, s, vt = gram_svd(m)
    assert u.dtype == s.dtype == vt.dtype == dtype
    u_ref, s_ref, vt_ref = torch.linalg.svd(m.to(F64), full_matrices=False)
    u, s, vt = u.to(F64), s.to(F64), vt.to(F64)
    rounding = 1e-5 if dtype == torch.float32 else 0.0
    s_max = s_ref[:, :1]
    assert ((s - s_ref).abs() / s_max).max() < 1e-10 + rounding
    assert torch.all(s[:, :-1] >= s[:, 1:])
    assert ((product(u, s, vt) - m).abs().max() / s_max.max()).item() < 1e-12 + rounding
    assert eye_error(vt.mT) < 1e-13 + rounding
    # Through the Gram matrix, U loses accuracy as ε κ² and a singular vector as ε σ_max²/gap.
    lam = s_ref.square()
    kappa2 = (lam[:, 0] / lam[:, -1]).max().item()
    assert eye_error(u) < 1e-14 * kappa2 + 1e-12 + rounding
    gaps = (lam.unsqueeze(-1) - lam.unsqueeze(-2)).abs() + torch.diag_embed(lam)
    conditioning = lam[:, :1] / gaps.min(dim=-1).values
    signs = torch.sign((u * u_ref).sum(-2))
    assert torch.all(
        (u * signs.unsqueeze(-2) - u_ref).abs().amax(-2) < 1e-13 * conditioning + rounding
    )
    assert torch.all(
        (vt * signs.unsqueeze(-1) - vt_ref).abs().amax(-1) < 1e-13 * conditioning + rounding
    )


@pytest.mark.parametrize(
    "spectrum",
    [[3.0, 3.0, 3.0, 1.0], [1.0, 1.0, 1.0, 1.0], [5.0, 2.0, 2.0, 2.0, 0.5], [2.0, 2.0 + 1e-9, 1.0]],
)
def test_equal_singular_values_forward(spectrum: list[float]) -> None:
    m = with_spectrum(16, spectrum, gen(len(spectrum)))
    u, s, vt = gram_svd(m)
    assert torch.allclose(
        s, torch.tensor(spectrum, dtype=F64).sort(descending=True).values, atol=1e-13
    )
    assert (product(u, s, vt) - m).abs().max() < 1e-13
    assert eye_error(u) < 1e-13
    assert eye_error(vt.mT) < 1e-13


@pytest.mark.parametrize(("v", "d"), [(4, 4), (16, 3), (16, 16), (256, 16), (256, 4)])
def test_sphere_normalised_flat_frame_has_exactly_equal_singular_values(v: int, d: int) -> None:
    m = flat_frame(v, d) @ random_orthogonal(d, gen(v + d), 1.0)
    u, s, vt = gram_svd(m)
    assert torch.allclose(s, torch.full((d,), (v / d) ** 0.5, dtype=F64), rtol=1e-14, atol=0)
    assert (product(u, s, vt) - m).abs().max() < 1e-13
    assert eye_error(u) < 1e-13


def rank_deficient_cases() -> list[torch.Tensor]:
    g = gen(7)
    repeated = gaussian(2, 5, g).repeat(8, 1)
    zero_columns = gaussian(12, 6, g)
    zero_columns[:, [1, 4]] = 0
    low_rank = gaussian(20, 2, g) @ gaussian(2, 8, g)
    return [repeated, zero_columns, low_rank]


@pytest.mark.parametrize("m", rank_deficient_cases())
def test_rank_deficient_forward_is_finite_and_accurate(m: torch.Tensor) -> None:
    u, s, vt = gram_svd(m)
    s_ref = torch.linalg.svdvals(m)
    rank = int((s_ref > 1e-10 * s_ref[0]).sum())
    assert torch.isfinite(u).all() and torch.isfinite(s).all()
    # Zero σ come back as √(rounding of λ): ~1e-8 σ_max, the Gram route's resolution.
    assert (s - s_ref).abs().max() < 1e-7 * s_ref[0]
    assert torch.allclose(s[:rank], s_ref[:rank], rtol=1e-12, atol=0)
    assert (product(u, s, vt) - m).abs().max() < 1e-12 * s_ref[0]
    assert eye_error(u[:, :rank]) < 1e-12
    assert u[:, rank:].abs().max() < 1e-3


@pytest.mark.parametrize("scale", [1e-8, 1e8])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_tiny_and_huge_scale(scale: float, dtype: torch.dtype) -> None:
    base = with_spectrum(16, [4.0, 3.0, 2.0, 2.0], gen(3))
    m = (base * scale).to(dtype).requires_grad_()
    u, s, vt = gram_svd(m)
    s.sum().backward()
    u0, s0, vt0 = gram_svd(base)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    assert torch.allclose(s.double() / scale, s0, rtol=tol, atol=0)
    assert torch.allclose(product(u, s, vt).double(), m.double(), rtol=0, atol=tol * 4 * scale)
    # d Σσ / dM = U Vᵀ does not depend on the scale.
    assert torch.allclose(m.grad.double(), u0 @ vt0, rtol=0, atol=10 * tol)


# --------------------------------------------------------------------------------------------
# Backward


@pytest.mark.slow
@settings(max_examples=8)
@given(seed=seeds, shape=st.sampled_from([(3, 3), (6, 3), (7, 4)]))
def test_gradcheck_of_gauge_invariant_functions(seed: int, shape: tuple[int, int]) -> None:
    v, d = shape
    g = gen(seed)
    m = torch.stack([with_spectrum(v, [1.0 + 0.7 * i for i in range(d)], g) for _ in range(2)])
    assert torch.autograd.gradcheck(gauge_invariant, (m.requires_grad_(),))


@pytest.mark.slow
@settings(max_examples=10)
@given(seed=seeds, shape=st.sampled_from([(4, 3), (16, 5), (48, 8), (256, 16)]))
def test_gradient_matches_torch_svd_autograd(seed: int, shape: tuple[int, int]) -> None:
    v, d = shape
    g = gen(seed)
    m = gaussian(2 * v, d, g).reshape(2, v, d).requires_grad_()
    weights = [torch.randn(out.shape, generator=g, dtype=F64) for out in gauge_invariant(m)]

    def loss(outs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return sum((w * out).sum() for w, out in zip(weights, outs, strict=True))

    (ours,) = torch.autograd.grad(loss(gauge_invariant(m)), m)
    (ref,) = torch.autograd.grad(loss(reference_gauge_invariant(m)), m)
    assert torch.allclose(ours, ref, rtol=1e-7, atol=1e-9 * ref.abs().max().item())


def degenerate_cases() -> dict[str, tuple[torch.Tensor, float]]:
    """Name → (matrix, float64 tolerance of the identity derivative).

    Rounding u in the gradients reaching U, S, Vt survives the eigenvector term amplified by
    g / (g² + ε²) at relative gap g of σ²: ~u/g for g ≫ ε, at most u / (2ε) (5e-7) near ε.
    """
    g = gen(11)
    return {
        "distinct": (gaussian(16, 5, g), 1e-10),
        "triple": (with_spectrum(16, [3.0, 3.0, 3.0, 1.0], g), 1e-10),
        "all_equal": (with_spectrum(48, [1.0] * 8, g), 1e-10),
        "gaps_near_eps": (
            with_spectrum(8, [2.0, 2.0 * (1 + 1e-11), 2.0 * (1 + 3e-10), 1.0], g),
            2e-6,
        ),
        "gap_near_float32_eps": (with_spectrum(16, [3.0, 3.0 * (1 + 1e-6), 2.0, 1.0], g), 2e-9),
        "flat_frame": (flat_frame(256, 16), 1e-10),
    }


@pytest.mark.parametrize("case", degenerate_cases())
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_product_has_identity_derivative_even_at_degeneracy(case: str, dtype: torch.dtype) -> None:
    m, tol64 = degenerate_cases()[case]
    m = m.to(dtype).requires_grad_()
    weight = torch.randn(m.shape, generator=gen(0), dtype=dtype)
    (grad,) = torch.autograd.grad((weight * product(*gram_svd(m))).sum(), m)
    assert grad.dtype == dtype
    assert torch.allclose(grad, weight, rtol=0, atol=1e-5 if dtype == torch.float32 else tol64)


@pytest.mark.parametrize(
    "m",
    [
        *(m for m, _ in degenerate_cases().values()),
        *rank_deficient_cases(),
        torch.zeros(6, 3, dtype=F64),
    ],
)
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_backward_is_finite_for_any_use_of_u_s_vt(m: torch.Tensor, dtype: torch.dtype) -> None:
    m = m.to(dtype).requires_grad_()
    u, s, vt = gram_svd(m)
    g = gen(1)
    loss = (
        (torch.randn(u.shape, generator=g, dtype=F64).to(dtype) * u).sum()
        + (torch.randn(vt.shape, generator=g, dtype=F64).to(dtype) * vt).sum()
        + s.square().sum()
    )
    (grad,) = torch.autograd.grad(loss, m)
    assert torch.isfinite(grad).all()


def test_gauge_dependent_gradient_grows_as_one_over_gap_until_broadening_caps_it() -> None:
    """Loss on the top right singular vector's projector, σ₁ = 2 (1 + δ) next to σ₂ = 2."""
    g = gen(5)
    q = random_orthogonal(8, g, 1.0)[:, :3]
    r = random_orthogonal(3, g, 1.0)
    weight = torch.randn(3, 3, generator=g, dtype=F64)

    def grad_norm(delta: float) -> float:
        m = (q * torch.tensor([2.0 * (1 + delta), 2.0, 1.0], dtype=F64) @ r.T).requires_grad_()
        top = gram_svd(m)[2][0]
        (grad,) = torch.autograd.grad((weight * torch.outer(top, top)).sum(), m)
        return grad.norm().item()

    assert grad_norm(1e-6) / grad_norm(1e-4) == pytest.approx(100, rel=1e-3)
    # ‖grad‖ ≈ c / g with g = (λ₁ − λ₂) / λ₁ ≈ 2δ; broadened, c g / (g² + ε²) ≤ c / (2ε).
    cap = grad_norm(1e-4) * 2e-4 / (2 * DEGENERACY_EPS)
    norms = [grad_norm(delta) for delta in (1e-9, 1e-10, 5e-11, 3e-11, 1e-11, 1e-13, 0.0)]
    assert max(norms) < 1.01 * cap
    assert max(norms) > 0.9 * cap


# --------------------------------------------------------------------------------------------
# Batching, dtype, validation


def test_result_does_not_depend_on_chunk_size() -> None:
    m = gaussian(10 * 48, 8, gen(2)).reshape(10, 48, 8)
    m_small, m_big = m.clone().requires_grad_(), m.clone().requires_grad_()
    small, big = gram_svd(m_small, chunk_size=3), gram_svd(m_big)
    for a, b in zip(small, big, strict=True):
        assert torch.equal(a, b)
    sum(x.sum() for x in small).backward()
    sum(x.sum() for x in big).backward()
    assert torch.equal(m_small.grad, m_big.grad)


def test_leading_dims_are_any_batch_shape() -> None:
    m = gaussian(2 * 3 * 16, 4, gen(4)).reshape(2, 3, 16, 4)
    u, s, vt = gram_svd(m)
    assert (u.shape, s.shape, vt.shape) == ((2, 3, 16, 4), (2, 3, 4), (2, 3, 4, 4))
    for i in range(2):
        for j in range(3):
            single = gram_svd(m[i, j])
            assert [x.shape for x in single] == [(16, 4), (4,), (4, 4)]
            assert all(torch.equal(a, b[i, j]) for a, b in zip(single, (u, s, vt), strict=True))
    empty = gram_svd(torch.zeros(0, 5, 3))
    assert [x.shape for x in empty] == [(0, 5, 3), (0, 3), (0, 3, 3)]


def test_float32_under_autocast_is_computed_in_float64() -> None:
    m = gaussian(3 * 32, 6, gen(6)).reshape(3, 32, 6).float()
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        u, s, vt = gram_svd(m)
    assert u.dtype == s.dtype == vt.dtype == torch.float32
    assert torch.allclose(s.double(), torch.linalg.svdvals(m.double()), rtol=1e-6, atol=0)


@pytest.mark.parametrize(
    ("m", "chunk_size"),
    [
        (torch.zeros(3, 4), 8),
        (torch.zeros(2, 3, 5), 8),
        (torch.zeros(4), 8),
        (torch.zeros(4, 0), 8),
        (torch.zeros(5, 3, dtype=torch.int64), 8),
        (torch.zeros(5, 3), 0),
        ([[1.0, 0.0], [0.0, 1.0]], 8),
    ],
)
def test_invalid_input_raises_value_error(m: torch.Tensor, chunk_size: int) -> None:
    with pytest.raises(ValueError, match=r"m must|chunk_size"):
        gram_svd(m, chunk_size=chunk_size)


# --------------------------------------------------------------------------------------------
# sphere_normalize


@given(k=st.integers(1, 40), d=st.integers(1, 16), seed=seeds)
def test_sphere_normalize_unit_rows_zero_rows_and_sign_equivariance(
    k: int, d: int, seed: int
) -> None:
    x = random_rows(k, d, seed)
    x[0] = 0
    y = sphere_normalize(x)
    assert torch.equal(y[0], torch.zeros(d, dtype=F64))
    assert torch.allclose(y[1:].norm(dim=-1), torch.ones(k - 1, dtype=F64), atol=1e-15)
    signs = random_signs(k, gen(seed)).unsqueeze(-1)
    assert torch.equal(sphere_normalize(x * signs), y * signs)
    assert torch.allclose(sphere_normalize(3.5 * x), y, atol=1e-15)
    assert torch.allclose(y * x.norm(dim=-1, keepdim=True), x, atol=1e-14)
