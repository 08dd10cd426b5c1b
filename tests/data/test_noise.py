"""Tests of geolip.data.noise against the spec §A.11 definitions, the DC bug and H.25."""

from __future__ import annotations

import math
from collections.abc import Callable
from types import SimpleNamespace

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from strategies import gen, seeds
from torch.nn.functional import interpolate

from geolip.data.noise import (
    CALIBRATIONS,
    CURRICULUM_TIERS,
    H2_GROUPS,
    OOD_NOISES,
    TRAINING_NOISES,
    _bilinear,
    _nearest,
    _Sampler,
    calibration_set,
    mixed_batch,
    noise_batch,
    ood_batch,
)

ALL_KINDS = [(k, noise_batch) for k in TRAINING_NOISES] + [(k, ood_batch) for k in OOD_NOISES]
KIND_NAMES = [k for k, _ in ALL_KINDS]


def sample(kind: str, n: int = 64, size: int | tuple[int, int] = 32, **kw) -> torch.Tensor:
    fn = noise_batch if kind in TRAINING_NOISES else ood_batch
    return fn(kind, n, size, generator=gen(kw.pop("seed", 0)), **kw)


def channel_std(x: torch.Tensor) -> torch.Tensor:
    """Within-channel std of each image-channel, (n, C) float64."""
    return x.double().std(dim=(2, 3))


def power_spectrum(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean |rfft2|² over images and channels and the radial frequency of each bin, DC removed."""
    h, w = x.shape[-2:]
    power = torch.fft.rfft2(x.double()).abs().square().mean(dim=(0, 1)).flatten()
    f = torch.hypot(torch.fft.fftfreq(h)[:, None], torch.fft.rfftfreq(w)[None, :]).flatten()
    return power[1:], f[1:].double()


# --- the contract, every type ----------------------------------------------------------------


@pytest.mark.parametrize(("kind", "fn"), ALL_KINDS, ids=KIND_NAMES)
def test_contract(kind: str, fn: Callable[..., torch.Tensor]) -> None:
    x = fn(kind, 5, (16, 24), channels=2, generator=gen(0))
    assert x.shape == (5, 2, 16, 24)
    assert x.dtype == torch.float32
    assert x.device.type == "cpu"
    assert torch.isfinite(x).all()
    assert x.abs().max() <= 4
    assert x.std() > 0.05  # not degenerate
    wide = fn(kind, 5, (16, 24), channels=2, generator=gen(0), dtype=torch.float64)
    assert wide.dtype == torch.float64 and (wide.abs() <= 4).all()


@pytest.mark.parametrize(("kind", "fn"), ALL_KINDS, ids=KIND_NAMES)
def test_deterministic_under_seed(kind: str, fn: Callable[..., torch.Tensor]) -> None:
    a = fn(kind, 4, 16, generator=gen(7))
    assert torch.equal(a, fn(kind, 4, 16, generator=gen(7)))
    assert not torch.equal(a, fn(kind, 4, 16, generator=gen(8)))
    kind_id = (TRAINING_NOISES if fn is noise_batch else OOD_NOISES).index(kind)
    assert torch.equal(a, fn(kind_id, 4, 16, generator=gen(7)))


@given(
    kind=st.sampled_from(KIND_NAMES),
    n=st.integers(0, 4),
    h=st.integers(2, 40),
    w=st.integers(2, 40),
    channels=st.integers(1, 4),
    seed=seeds,
)
def test_any_shape_is_bounded_and_finite(
    kind: str, n: int, h: int, w: int, channels: int, seed: int
) -> None:
    x = sample(kind, n, (h, w), channels=channels, seed=seed)
    assert x.shape == (n, channels, h, w)
    assert torch.isfinite(x).all()
    assert (x.abs() <= 4).all()


def test_reduced_precision_is_a_cast() -> None:
    full = sample("fbm", 4, 16)
    half = sample("fbm", 4, 16, dtype=torch.bfloat16)
    assert half.dtype == torch.bfloat16
    assert torch.equal(half, full.to(torch.bfloat16))


# --- per-type statistical signatures --------------------------------------------------------


def test_gaussian_moments() -> None:
    x = sample("gaussian")  # 196,608 values: standard error of the mean ≈ 0.0023
    assert x.mean().item() == pytest.approx(0, abs=0.01)
    assert x.std().item() == pytest.approx(1, abs=0.01)


@pytest.mark.parametrize(("kind", "half_width"), [("uniform", 1.0), ("uniform_scaled", 2.0)])
def test_uniform_range_and_moments(kind: str, half_width: float) -> None:
    x = sample(kind)
    assert x.min() >= -half_width and x.max() <= half_width
    assert x.min() < -0.99 * half_width and x.max() > 0.99 * half_width
    assert x.mean().item() == pytest.approx(0, abs=0.01 * half_width)
    assert x.std().item() == pytest.approx(half_width / math.sqrt(3), rel=0.01)


def test_exponential_is_centred() -> None:
    # Exp(1) − 1 has mean 0; the clamp at 4 removes E[(X − 5)⁺] = e^−5
    assert sample("exponential").mean().item() == pytest.approx(-math.exp(-5), abs=0.01)
    assert sample("exponential").min() >= -1


def test_laplace_spread() -> None:
    # Laplace(0, 1) has std √2; clamped at ±a its variance is 2 − (2a + 2)·e^−a
    x = sample("laplace")
    assert x.std().item() == pytest.approx(math.sqrt(2 - 10 * math.exp(-4)), rel=0.01)
    assert (x.abs() == 4).double().mean().item() == pytest.approx(math.exp(-4), abs=0.003)


def test_salt_pepper_sits_near_plus_minus_two() -> None:
    x = sample("salt_pepper")
    assert (x.abs() - 2).abs().max() < 0.6  # ±2 plus 0.1·N
    assert (x > 0).double().mean().item() == pytest.approx(0.5, abs=0.01)


def test_sparse_is_ninety_percent_zeros() -> None:
    assert (sample("sparse") == 0).double().mean().item() == pytest.approx(0.9, abs=0.005)


def test_cauchy_clamps_to_three() -> None:
    x = sample("cauchy")
    assert x.abs().max() == 3  # H.30: ±3 before the global ±4
    # P(|tan(π(U − ½))| > 3) = 1 − (2/π)·atan 3
    tail = 1 - 2 / math.pi * math.atan(3)
    assert (x.abs() == 3).double().mean().item() == pytest.approx(tail, abs=0.005)


def test_poisson_is_centred_per_image() -> None:
    x = sample("poisson")
    assert x.min() >= -1
    assert x.mean().item() == pytest.approx(0, abs=0.02)
    # values (k/λ − 1) lie on one lattice per image, spacing 1/λ, starting at k = 0
    for image in x[:8].double():
        values = image.unique()
        values = values[values < 4]
        spacing = values.diff().min()
        assert 1 / 20 <= spacing <= 2  # λ ∈ [0.5, 20)
        k = (values + 1) / spacing
        torch.testing.assert_close(k, k.round(), rtol=0, atol=1e-3)


@pytest.mark.parametrize(
    ("kind", "mean"),
    [
        ("log_normal", math.exp(0.125) - 1.5),
        ("beta", 0.0),
        ("weibull", math.gamma(1 + 1 / 1.5) - 1),
        ("gumbel", 0.5 * 0.5772156649),
        ("rayleigh", math.sqrt(math.pi / 2) - 1),
    ],
)
def test_ood_pointwise_means(kind: str, mean: float) -> None:
    assert sample(kind).mean().item() == pytest.approx(mean, abs=0.01)


def test_beta_is_arcsine() -> None:
    x = sample("beta")
    assert x.min() >= -2 and x.max() <= 2
    assert x.std().item() == pytest.approx(4 * math.sqrt(1 / 8), rel=0.01)  # Var Beta(½, ½) = ⅛
    assert (x.abs() > 1.9).double().mean() > 3 * (x.abs() < 0.1).double().mean()  # U-shaped


SHARED_PATTERNS = [
    ("gradient", 0.5),
    ("checkerboard", 0.3),
    ("gabor", 0.2),
    ("voronoi", 0.1),
    ("rings", 0.3),
    ("spiral", 0.2),
]


@pytest.mark.parametrize(("kind", "sigma"), SHARED_PATTERNS)
def test_pattern_is_shared_across_channels(kind: str, sigma: float) -> None:
    x = sample(kind)
    difference = x[:, 0] - x[:, 1]  # the pattern cancels, σ·(N₀ − N₁) remains
    assert difference.std().item() == pytest.approx(sigma * math.sqrt(2), rel=0.03)
    assert torch.corrcoef(x[:, :2].transpose(0, 1).reshape(2, -1))[0, 1] > 0.3


def test_checkerboard_pattern() -> None:
    mean = sample("checkerboard", 8, 64, channels=64).mean(dim=1)  # noise 0.3/8 per pixel
    board = mean.round()
    assert set(board.unique().tolist()) == {-1.0, 1.0}
    for image in board:
        cs = int((image[0] != image[0, 0]).nonzero()[0])  # first sign flip along the top row
        assert 2 <= cs < 16
        i = torch.arange(64)
        expected = image[0, 0] * (-1.0) ** (i[:, None] // cs + i[None, :] // cs)
        assert torch.equal(image, expected)


def test_gradient_is_a_unit_slope_plane() -> None:
    mean = sample("gradient", 8, 64, channels=64).mean(dim=1).double()  # noise 0.5/8 per pixel
    t = torch.linspace(-2, 2, 64, dtype=torch.float64)
    design = torch.stack([t.repeat_interleave(64), t.repeat(64), torch.ones(64 * 64)], dim=1)
    coef = torch.linalg.lstsq(design, mean.reshape(8, -1).T).solution  # (3, 8): sin a, cos a, 0
    assert torch.allclose(coef[:2].norm(dim=0), torch.ones(8, dtype=torch.float64), atol=0.01)
    assert coef[2].abs().max() < 0.01


def test_block_is_piecewise_constant_on_the_upsampling_grid() -> None:
    x = sample("block", 32, 64)
    allowed = {64 // b + 1 for b in range(2, 16)}
    for image in x:
        row_change = (image.diff(dim=1) != 0).any(dim=(0, 2))  # (63,) rows that differ
        col_change = (image.diff(dim=2) != 0).any(dim=(0, 1))
        cells = int(row_change.sum()) + 1
        assert cells in allowed and int(col_change.sum()) + 1 == cells  # square cells, one b
        # cell index ⌊i·cells/64⌋ changes exactly where the image changes
        edges = (torch.arange(64) * cells // 64).diff() != 0
        assert torch.equal(row_change, edges) and torch.equal(col_change, edges)


def test_structural_quadrants() -> None:
    x = sample("structural", 64, 32)
    tl, tr, bl, br = x[..., :16, :16], x[..., :16, 16:], x[..., 16:, :16], x[..., 16:, 16:]
    assert tl.std().item() == pytest.approx(1, rel=0.02)
    assert tr.abs().max() <= 1 and tr.std().item() == pytest.approx(1 / math.sqrt(3), rel=0.02)
    assert torch.allclose(channel_std(bl), torch.full((64, 3), 0.5, dtype=torch.float64), rtol=0.05)
    assert set(br.unique().tolist()) == {-1.0, 1.0}


def test_structural_faithful_pink_quadrant_saturates() -> None:
    x = sample("structural", 16, 32, faithful=True)
    bl = x[..., 16:, :16]
    assert (bl.abs() == 4).all()  # DC × 1e8 / 2, clamped: one ±4 plane per channel
    assert (channel_std(bl) == 0).all()
    assert torch.equal(x[..., :16, :], sample("structural", 16, 32)[..., :16, :])


@pytest.mark.parametrize("kind", ["perlin", "fbm", "sine_composite"])
def test_unit_std_per_image(kind: str) -> None:
    per_image = sample(kind, 16).double().std(dim=(1, 2, 3))
    assert torch.allclose(per_image, torch.ones(16, dtype=torch.float64), atol=0.01)


def test_wavelet_removes_its_low_frequency_block() -> None:
    spectrum = torch.fft.rfft2(sample("wavelet", 16, 64).double()).abs()
    typical = spectrum[..., 4:, 4:].mean()
    # upstream zeroes rfft2[:s//16, :s//16]: the positive row frequencies only
    assert spectrum[..., :4, 1:4].max() < 0.02 * typical  # not exactly 0: the ±4 clamp leaks
    assert spectrum[..., -3:, 1:4].mean() > 0.5 * typical


def test_bilinear_weights_match_interpolate() -> None:
    r = _Sampler(None, torch.device("cpu"), torch.float64)
    for size, cells in [(64, 65), (64, 17), (64, 2), (30, 7), (7, 9)]:
        grid = torch.randn(2, 3, cells, cells, generator=gen(size), dtype=torch.float64)
        reference = interpolate(grid, size=(size, size), mode="bilinear", align_corners=False)
        by, bx = _bilinear(size, cells, r), _bilinear(size, cells, r)
        torch.testing.assert_close(by @ grid @ bx.T, reference, rtol=0, atol=1e-12)


def test_nearest_matches_interpolate() -> None:
    grid = torch.randn(3, 2, 33, 33, generator=gen(0))
    cells = torch.tensor([33, 17, 5]).view(3, 1, 1, 1)
    out = _nearest(grid, cells, cells, 64, 64)
    for k, m in enumerate(cells.flatten().tolist()):
        reference = interpolate(grid[k : k + 1, :, :m, :m], size=64, mode="nearest")
        assert torch.equal(out[k : k + 1], reference)


# --- the pink/brown DC bug (§0 fact 7, H.2) -------------------------------------------------


def upstream_coloured(white: torch.Tensor, exponent: int, faithful: bool) -> torch.Tensor:
    """dataset_presets._pink_noise / _brown_noise and their normalisation, transcribed; the
    corrected variant zeroes the DC bin and normalises per image-channel."""
    h, w = white.shape[-2:]
    fy = torch.fft.fftfreq(h).unsqueeze(-1).expand(-1, w // 2 + 1)
    fx = torch.fft.rfftfreq(w).unsqueeze(0).expand(h, -1)
    radius = torch.sqrt(fx**2 + fy**2) if exponent == 1 else fx**2 + fy**2
    gain = 1 / radius.clamp(min=1e-8)
    if not faithful:
        gain[0, 0] = 0
    img = torch.fft.irfft2(torch.fft.rfft2(white) * gain, s=(h, w))
    dims = (1, 2, 3) if faithful else (2, 3)
    return (img / (img.std(dim=dims, keepdim=True) + 1e-8)).clamp(-4, 4)


@pytest.mark.parametrize("faithful", [True, False])
@pytest.mark.parametrize(("kind", "exponent"), [("pink", 1), ("brown", 2)])
def test_pink_brown_follow_upstream_formula(kind: str, exponent: int, faithful: bool) -> None:
    white = torch.randn(8, 3, 32, 32, generator=gen(2))  # the one draw the generator makes
    expected = upstream_coloured(white, exponent, faithful)
    x = sample(kind, 8, 32, seed=2, faithful=faithful)
    torch.testing.assert_close(x, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kind", ["pink", "brown"])
def test_faithful_pink_brown_are_flat_colour_planes(kind: str) -> None:
    x = sample(kind, 64, 64, faithful=True)
    within = channel_std(x)
    assert torch.quantile(within.flatten(), 0.95) < 1e-3  # upstream: 1e-6 … 4e-4
    colour = x.double().mean(dim=(2, 3)).std(dim=1)  # the planes differ from each other
    assert colour.median() > 0.5


@pytest.mark.parametrize(("kind", "slope", "contrast"), [("pink", -2.0, 30), ("brown", -4.0, 1000)])
def test_corrected_pink_brown_have_unit_std_and_power_law(
    kind: str, slope: float, contrast: float
) -> None:
    x = sample(kind, 64, 64)
    assert torch.allclose(channel_std(x), torch.ones(64, 3, dtype=torch.float64), atol=0.01)
    assert x.double().mean(dim=(2, 3)).abs().max() < 1e-3  # DC bin zeroed (up to the ±4 clamp)
    power, f = power_spectrum(x)
    fitted = torch.linalg.lstsq(
        torch.stack([f.log(), torch.ones_like(f)], dim=1), power.log()[:, None]
    ).solution
    assert fitted[0].item() == pytest.approx(slope, abs=0.1)  # |1/f^α|² has log-slope −2α
    assert power[f < 0.1].mean() > contrast * power[f > 0.3].mean()


def test_gaussian_spectrum_is_flat() -> None:
    power, f = power_spectrum(sample("gaussian", 64, 64))
    assert power[f < 0.1].mean() / power[f > 0.3].mean() == pytest.approx(1, abs=0.1)


# --- mixed batches and calibration sets -----------------------------------------------------


def test_mixed_batch_labels_cover_all_types() -> None:
    x, labels = mixed_batch(512, 16, generator=gen(3))
    assert x.shape == (512, 3, 16, 16) and labels.shape == (512,)
    assert labels.dtype == torch.int64
    assert set(labels.tolist()) == set(range(16))
    again_x, again_labels = mixed_batch(512, 16, generator=gen(3))
    assert torch.equal(x, again_x) and torch.equal(labels, again_labels)


def test_mixed_batch_labels_match_images() -> None:
    x, labels = mixed_batch(256, 32, generator=gen(4))
    for t, holds in [
        (1, lambda im: im.abs().max() <= 1),  # uniform
        (6, lambda im: (im.abs() - 2).abs().max() < 0.6),  # salt_pepper
        (7, lambda im: (im == 0).double().mean() > 0.8),  # sparse
        (12, lambda im: set(im[:, 16:, 16:].unique().tolist()) == {-1.0, 1.0}),  # structural
        (13, lambda im: im.abs().max() == 3),  # cauchy
    ]:
        images = x[labels == t]
        assert len(images) > 0
        assert all(holds(im) for im in images), TRAINING_NOISES[t]


def test_host_drawn_types_from_the_same_generator_give_the_same_batch() -> None:
    """On the CPU a label generator that is the image generator changes nothing, bit for bit:
    the type-sorted block and its gather place every image where the masked writes did."""
    x, labels = mixed_batch(300, 16, generator=gen(7))
    g = gen(7)
    y, host_labels = mixed_batch(300, 16, generator=g, label_generator=g)
    assert torch.equal(x, y) and torch.equal(labels, host_labels)


def _radial_power(x: torch.Tensor, bands: int = 4) -> torch.Tensor:
    power, f = power_spectrum(x)
    edges = torch.linspace(0, float(f.max()) + 1e-9, bands + 1, dtype=torch.float64)
    band = torch.bucketize(f, edges[1:-1])
    return torch.stack([power[band == b].mean() for b in range(bands)])


@pytest.mark.slow
def test_host_drawn_types_keep_every_type_distribution() -> None:
    """Types from a separate CPU generator (the GPU path, no synchronisation): each type's
    images match that type's reference generator in moments and radial power spectrum, the
    types are uniform, and the batch is reproducible from the two seeds."""
    x, labels = mixed_batch(2048, 16, generator=gen(11), label_generator=gen(12))
    again, again_labels = mixed_batch(2048, 16, generator=gen(11), label_generator=gen(12))
    assert torch.equal(x, again) and torch.equal(labels, again_labels)
    counts = torch.bincount(labels, minlength=16).double()
    chi2 = ((counts - 128) ** 2 / 128).sum().item()
    assert chi2 < 37.7  # χ²(15) 0.999 quantile
    for t, kind in enumerate(TRAINING_NOISES):
        mine, reference = x[labels == t].double(), sample(kind, 512, 16, seed=13).double()
        assert abs(mine.mean() - reference.mean()) < 0.05 + 0.1 * reference.std(), kind
        assert mine.std() == pytest.approx(reference.std().item(), rel=0.1), kind
        ratio = _radial_power(mine) / _radial_power(reference)
        assert ((ratio > 0.75) & (ratio < 1.33)).all(), (kind, ratio.tolist())


def test_label_generator_must_be_on_the_cpu() -> None:
    on_gpu = SimpleNamespace(device=torch.device("cuda"))  # a CUDA generator, as far as it asks
    with pytest.raises(ValueError, match="CPU generator, got cuda"):
        mixed_batch(4, 8, generator=gen(0), label_generator=on_gpu)  # type: ignore[arg-type]


def test_mixed_batch_kinds_subset_uses_global_ids() -> None:
    _, labels = mixed_batch(64, 8, kinds=CURRICULUM_TIERS[1], generator=gen(0))
    assert set(labels.tolist()) == {4, 5, 8, 9}
    _, labels = mixed_batch(8, 8, kinds=[13], generator=gen(0))
    assert labels.tolist() == [13] * 8


@pytest.mark.parametrize("n", [1, 17, 33, 64])
@pytest.mark.parametrize("name", ["sixteen_noise", "ood_sixteen"])
def test_calibration_returns_exactly_n_round_robin(name: str, n: int) -> None:
    images, labels = calibration_set(name, n, size=16)
    assert images.shape == (n, 3, 16, 16)  # H.25: never 16·⌈n/16⌉
    assert torch.equal(labels, torch.arange(n) % 16)
    again, _ = calibration_set(name, n, size=16)
    assert torch.equal(images, again)
    assert not torch.equal(images, calibration_set(name, n, size=16, seed=1)[0])


def test_sixteen_noise_images_have_their_types() -> None:
    images, labels = calibration_set("sixteen_noise", 48, size=32)
    assert (images[labels == 1].abs() <= 1).all()  # uniform
    assert ((images[labels == 6].abs() - 2).abs() < 0.6).all()  # salt_pepper
    assert (images[labels == 13].abs() <= 3).all()  # cauchy
    faithful, _ = calibration_set("sixteen_noise", 48, size=32, faithful=True)
    assert channel_std(faithful[labels == 4]).max() < 1e-3  # pink keeps the DC bug
    assert channel_std(images[labels == 4]).min() > 0.9


@pytest.mark.parametrize(("name", "label"), [("gaussian", 0), ("uniform", 1)])
def test_single_type_calibrations(name: str, label: int) -> None:
    images, labels = calibration_set(name, 33, size=32, seed=5)
    assert images.shape == (33, 3, 32, 32) and images.dtype == torch.float32
    assert (labels == label).all()
    expected_std = 1.0 if name == "gaussian" else 1 / math.sqrt(3)
    assert images.std().item() == pytest.approx(expected_std, rel=0.02)
    assert images.abs().max() <= (4 if name == "gaussian" else 1)


# --- names, groupings, errors ---------------------------------------------------------------


def test_taxonomy() -> None:
    assert TRAINING_NOISES[:4] == ("gaussian", "uniform", "uniform_scaled", "poisson")
    assert TRAINING_NOISES[12:] == ("structural", "cauchy", "exponential", "laplace")
    assert len(TRAINING_NOISES) == len(OOD_NOISES) == 16
    assert sorted(sum(CURRICULUM_TIERS, ())) == sorted(TRAINING_NOISES)
    assert CURRICULUM_TIERS[4] == ("cauchy", "salt_pepper", "structural")
    groups = [set(g) for g in H2_GROUPS.values()]
    assert set().union(*groups) == set(TRAINING_NOISES) - {"gaussian"}
    assert sum(map(len, groups)) == 15  # disjoint
    assert H2_GROUPS["HARD"] == ("pink", "brown", "block", "gradient", "checkerboard", "structural")
    assert CALIBRATIONS == ("gaussian", "uniform", "sixteen_noise", "ood_sixteen")


@pytest.mark.parametrize(
    ("call", "valid"),
    [
        (lambda: noise_batch("purple", 1, 8), TRAINING_NOISES),
        (lambda: noise_batch(16, 1, 8), TRAINING_NOISES),
        (lambda: ood_batch("gaussian", 1, 8), OOD_NOISES),
        (lambda: mixed_batch(1, 8, kinds=["gaussian", "nope"]), TRAINING_NOISES),
        (lambda: calibration_set("imagenet", 1), CALIBRATIONS),
    ],
)
def test_unknown_names_list_the_valid_ones(call: Callable[[], object], valid: tuple) -> None:
    with pytest.raises(ValueError, match="expected one of") as info:
        call()
    assert all(name in str(info.value) for name in valid)


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="H, W ≥ 2"):
        noise_batch("gaussian", 1, 1)
    with pytest.raises(ValueError, match="n ≥ 0"):
        noise_batch("gaussian", -1, 8)
    with pytest.raises(ValueError, match="floating point"):
        noise_batch("gaussian", 1, 8, dtype=torch.int64)
    with pytest.raises(ValueError, match="at least one"):
        mixed_batch(1, 8, kinds=[])
    with pytest.raises(ValueError, match="generator is on"):
        noise_batch("gaussian", 1, 8, generator=gen(0), device="meta")
