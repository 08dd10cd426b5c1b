"""The sphere-solver: exact upstream parameter counts, the encode_rows contract, raster order,
tiled == direct, the linear readout and bypass control, input checks, gradients."""

from __future__ import annotations

import math
from typing import Any

import pydantic
import pytest
import torch
from strategies import gen

from geolip.producers.presets import PRESETS, build
from geolip.producers.sphere_solver import SphereSolver, SphereSolverConfig


def tiny(seed: int = 0, **overrides: Any) -> SphereSolver:
    """A small float64 model: V=6, D=3, ps=2, hidden 16, depth 1, one cross-attention layer."""
    fields = dict(V=6, D=3, patch_size=2, hidden=16, depth=1, n_cross=1, n_heads=1) | overrides
    torch.manual_seed(seed)
    return SphereSolver(SphereSolverConfig(**fields)).double()


def images(h: int, w: int, b: int = 2, c: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, c, h, w, generator=gen(seed), dtype=torch.float64)


def assert_same(a: torch.Tensor, b: torch.Tensor) -> None:
    """Equal up to float64 rounding: BLAS results depend on how many rows a call sees, so a
    tile's patches can differ from the same patches inside the whole image by an ulp or so."""
    torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def formula(c: SphereSolverConfig) -> int:
    """Spec §A.9, written independently of the model code."""
    P, L, h, D = c.channels * c.patch_size**2, c.V * c.D, c.hidden, c.D
    readout = L * L + L if c.readout == "linear" else 0
    cross = 0 if c.readout == "bypass" else c.n_cross * (4 * D * D + 7 * D)
    smooth = 2 * 9 * c.channels * c.mid + c.mid + c.channels
    return (
        (P * h + h)
        + 2 * c.depth * (2 * h + 2 * h * h + 2 * h)
        + (h * L + L)
        + readout
        + (L * h + h)
        + (h * P + P)
        + cross
        + smooth
    )


@pytest.mark.parametrize(
    ("name", "count", "mid"),
    [
        ("fresnel", 16_942_419, 16),
        ("freckles", 2_557_539, 8),
        ("h2", 57_215, 16),
        ("h2a", 40_227, 16),
        ("p_class", 28_899, 16),
    ],
)
def test_presets_have_the_upstream_parameter_counts(name: str, count: int, mid: int) -> None:
    model = build(name)
    assert model.param_count() == count == formula(PRESETS[name].model)
    assert model.config.mid == mid


@pytest.mark.parametrize("readout", ["svd", "linear", "bypass"])
def test_parameter_count_follows_the_formula(readout: str) -> None:
    config = tiny(readout=readout, n_cross=2, depth=2, channels=2, smooth_mid=5).config
    assert SphereSolver(config).param_count() == formula(config)


def test_config_defaults_and_validation() -> None:
    assert SphereSolverConfig(V=8, D=4, patch_size=4, hidden=8, depth=0, n_cross=1).heads == 2
    assert SphereSolverConfig(V=8, D=16, patch_size=16, hidden=8, depth=0, n_cross=1).heads == 4
    assert SphereSolverConfig(V=8, D=3, patch_size=4, hidden=8, depth=0, n_cross=0).mid == 8
    assert PRESETS["p_class"].model.D == 3  # 2 heads do not divide D=3: fine without attention
    with pytest.raises(pydantic.ValidationError, match="must divide D=3"):
        SphereSolverConfig(V=8, D=3, patch_size=4, hidden=8, depth=0, n_cross=1)
    with pytest.raises(pydantic.ValidationError, match="extra"):
        SphereSolverConfig(V=8, D=4, patch_size=4, hidden=8, depth=0, n_cross=0, width=3)
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        PRESETS["h2"].model.V = 3  # type: ignore[misc]
    with pytest.raises(ValueError, match="unknown preset 'nope'; known: fresnel"):
        build("nope")
    assert build("freckles", D=16, V=12, hidden=8).config.heads == 4


def test_alpha_starts_near_upstream_init() -> None:
    alpha = 0.2 * torch.sigmoid(tiny().cross_attn[0].alpha_logits)
    expected = torch.full((3,), 0.2 / (1 + math.exp(2)), dtype=torch.float64)
    torch.testing.assert_close(alpha, expected)
    assert abs(alpha[0].item() - 0.02384) < 1e-5


def test_cross_attention_is_the_spec_formula_and_permutation_equivariant() -> None:
    layer = tiny(V=6, D=4, n_heads=2).cross_attn[0]
    with torch.no_grad():
        layer.alpha_logits.normal_(generator=gen(1))
    S = 1 + torch.rand(2, 7, 4, generator=gen(2), dtype=torch.float64)

    def heads(t: torch.Tensor) -> torch.Tensor:  # (B, N, 4) → (B, 2 heads, N, 2)
        return t.unflatten(-1, (2, 2)).transpose(1, 2)

    q, k, v = layer.qkv(layer.norm(S)).split(4, dim=-1)
    attn = torch.softmax(heads(q) @ heads(k).mT / math.sqrt(2), dim=-1)
    o = (attn @ heads(v)).transpose(1, 2).flatten(-2)
    g = torch.tanh(layer.out_proj(o))
    torch.testing.assert_close(layer(S), S * (1 + 0.2 * torch.sigmoid(layer.alpha_logits) * g))
    perm = torch.randperm(7, generator=gen(3))
    torch.testing.assert_close(layer(S[:, perm]), layer(S)[:, perm])


def test_encode_rows_gives_unit_rows_at_any_resolution() -> None:
    model = tiny(patch_size=4)
    x = images(30, 45)
    M = model.encode_rows(x)
    assert M.shape == (2, 8 * 12, 6, 3)  # ⌈30/4⌉·⌈45/4⌉ patches of the padded grid
    assert torch.allclose(M.norm(dim=-1), torch.ones(2, 96, 6, dtype=torch.float64))
    out = model(x)
    assert out["recon"].shape == x.shape
    assert out["S"].shape == (2, 96, 3) and out["Vt"].shape == (2, 96, 3, 3)
    assert torch.equal(out["M"], M)


def test_patch_order_is_raster() -> None:
    model, (gh, gw), ps = tiny(n_cross=0), (3, 5), 2
    x = images(gh * ps, gw * ps)
    i, j = 1, 3
    y = x.clone()
    y[:, :, i * ps : (i + 1) * ps, j * ps : (j + 1) * ps] += 1.0
    changed = (model.encode_rows(y) != model.encode_rows(x)).flatten(2).any(dim=2)
    expected = torch.zeros(2, gh * gw, dtype=torch.bool)
    expected[:, i * gw + j] = True
    assert torch.equal(changed, expected)


@pytest.mark.parametrize(
    ("h", "w"),  # the largest image only in the full run: `-m "not slow"` keeps three shapes
    [(12, 20), pytest.param(30, 45, marks=pytest.mark.slow), (14, 6), (9, 9)],
)
@pytest.mark.parametrize("tile", [1, 2, 3, 5])
@pytest.mark.parametrize("overrides", [{"n_cross": 0}, {"n_cross": 2, "readout": "bypass"}])
def test_tiled_equals_direct_without_cross_attention(
    h: int, w: int, tile: int, overrides: dict[str, Any]
) -> None:
    model = tiny(**overrides)
    x = images(h, w)
    assert_same(model.encode_rows(x, tile_patches=tile), model.encode_rows(x))
    direct, tiled = model(x), model(x, tile_patches=tile)
    assert direct.keys() == tiled.keys()
    for key in direct:
        assert_same(tiled[key], direct[key])


def test_tiled_differs_from_direct_with_cross_attention() -> None:
    model = tiny(n_cross=2, seed=3)
    x = images(12, 20)
    assert_same(model.encode_rows(x, tile_patches=3), model.encode_rows(x))  # M is per patch
    direct, tiled = model(x), model(x, tile_patches=3)
    assert_same(tiled["S_orig"], direct["S_orig"])
    assert (tiled["S"] - direct["S"]).abs().max() > 1e-6
    assert (tiled["recon"] - direct["recon"]).abs().max() > 1e-6


def decoder_input(model: SphereSolver, x: torch.Tensor) -> tuple[torch.Tensor, dict]:
    seen = []
    handle = model.dec_in.register_forward_pre_hook(lambda _, args: seen.append(args[0]))
    out = model(x)
    handle.remove()
    return seen[0], out


def test_svd_recomposes_m_up_to_the_cross_attention_scaling() -> None:
    model = tiny()
    seen, out = decoder_input(model, images(8, 8))
    U, S, Vt = out["U"], out["S"], out["Vt"]
    assert torch.allclose(U @ torch.diag_embed(out["S_orig"]) @ Vt, out["M"], atol=1e-12)
    assert torch.allclose(seen, (U @ torch.diag_embed(S) @ Vt).flatten(-2), atol=1e-12)
    assert (out["S"] - out["S_orig"]).abs().max() > 0


def test_linear_readout_feeds_the_decoder_u_diag_s() -> None:
    model = tiny(readout="linear", n_cross=1)
    seen, out = decoder_input(model, images(8, 6))
    U = out["U"]
    assert torch.equal(U, model.readout(out["M"].flatten(-2)).unflatten(-1, (6, 3)))
    assert torch.equal(out["S_orig"], U.norm(dim=-2))
    assert torch.equal(out["Vt"], torch.eye(3, dtype=torch.float64).expand(2, 12, 3, 3))
    # Upstream's quadratic scaling: each readout column times its own (modulated) norm.
    assert torch.equal(seen, (U * out["S"].unsqueeze(-2)).flatten(-2))


def test_bypass_reads_m_and_equals_the_svd_model_with_zero_alpha() -> None:
    svd = tiny(n_cross=2, max_alpha=0.0, seed=5)
    bypass = tiny(n_cross=2, readout="bypass")
    assert len(bypass.cross_attn) == 0
    assert svd.param_count() - bypass.param_count() == 2 * (4 * 9 + 7 * 3)
    state = {k: v for k, v in svd.state_dict().items() if not k.startswith("cross_attn")}
    bypass.load_state_dict(state, strict=True)
    x = images(10, 6)
    seen, out = decoder_input(bypass, x)
    assert torch.equal(seen, out["M"].flatten(-2))
    assert torch.equal(out["S"], out["S_orig"])
    assert torch.allclose(out["recon"], svd(x)["recon"], atol=1e-12, rtol=0)


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (torch.zeros(3, 8, 8), r"expected images of shape \(B, C, H, W\)"),
        (torch.zeros(1, 1, 8, 8), "expected 3 channels, got 1"),
        (torch.zeros(1, 3, 8, 1), "smaller than one 2×2 patch"),
        (torch.zeros(1, 3, 8, 8, dtype=torch.int64), "floating-point"),
        (torch.full((1, 3, 8, 8), float("nan")), "NaN"),
        (torch.tensor(float("inf")).expand(1, 3, 4, 4), "±inf"),
    ],
)
def test_bad_inputs_are_refused_before_any_work(x: torch.Tensor, message: str) -> None:
    model = tiny()
    with pytest.raises(ValueError, match=message):
        model(x)
    with pytest.raises(ValueError, match=message):
        model.encode_rows(x)


@pytest.mark.parametrize("readout", ["svd", "linear", "bypass"])
def test_forward_backward_gives_finite_gradients(readout: str) -> None:
    model = tiny(readout=readout, depth=2).float()
    x = images(10, 6).float()
    out = model(x, tile_patches=2)
    loss = (out["recon"] - x).square().mean() + out["S"].mean()
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert model.enc_in.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("tile", [None, 2, 3])
def test_reconstruct_keeps_only_the_image_and_equals_forward(tile: int | None) -> None:
    """``reconstruct`` (what the large-image path runs) is forward's recon, tiled or not."""
    torch.manual_seed(0)
    config = SphereSolverConfig(V=6, D=4, patch_size=2, hidden=8, depth=1, n_cross=1)
    model = SphereSolver(config).eval()
    x = torch.randn(2, 3, 10, 14)
    with torch.no_grad():
        assert torch.equal(
            model.reconstruct(x, tile_patches=tile), model(x, tile_patches=tile)["recon"]
        )
