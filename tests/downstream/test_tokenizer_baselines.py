"""The tokenizer's baselines: patches, k-means VQ, FSQ levels, and the learned FSQ / VQ codecs
(these need vector-quantize-pytorch and are skipped without it)."""

from __future__ import annotations

import math
import sys

import pytest
import torch

from geolip.data import open_dataset
from geolip.downstream.tokenizer_baselines import (
    CodecConfig,
    KMeansPatchVQ,
    PatchCodec,
    fsq_levels,
    image_patches,
    patches_to_images,
    train_patch_codec,
)
from geolip.errors import IncompatibleInputError, OptionalDependencyError


def test_fsq_levels_multiply_to_the_vocabulary() -> None:
    for codes in range(2, 3000):
        assert math.prod(fsq_levels(codes)) == codes
    for bits in range(1, 13):  # powers of two: ⌈bits / 3⌉ levels, none above 8
        levels = fsq_levels(2**bits)
        assert len(levels) == math.ceil(bits / 3) and max(levels) <= 8
    assert fsq_levels(512) == [8, 8, 8]
    with pytest.raises(ValueError, match="at least 2"):
        fsq_levels(1)


def test_patches_round_trip_and_refuse_a_ragged_grid() -> None:
    x = torch.randn(2, 3, 8, 12)
    p = image_patches(x, 4)
    assert p.shape == (2, 6, 48)
    assert torch.equal(p[0, 1], x[0, :, :4, 4:8].flatten())  # raster order, channels first
    assert torch.equal(patches_to_images(p, (8, 12), 4), x)
    with pytest.raises(IncompatibleInputError, match="5×5"):
        image_patches(x, 5)


def test_kmeans_vq_is_exact_on_as_many_patches_as_codes() -> None:
    tiles = torch.randn(4, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    pick = torch.randint(4, (6, 4, 4), generator=torch.Generator().manual_seed(1))
    images = tiles[pick].permute(0, 3, 1, 4, 2, 5).reshape(6, 1, 8, 8)  # 4×4 grid of tiles
    vq = KMeansPatchVQ(images, 2, 4, seed=0, max_vectors=1000)
    codes = vq.codes(images)
    assert codes.shape == (6, 16) and int(codes.max()) < 4
    assert torch.allclose(vq.decode(codes, (8, 8)), images, atol=1e-5)


def test_a_missing_package_is_named_with_its_install() -> None:
    saved = sys.modules.get("vector_quantize_pytorch")
    sys.modules["vector_quantize_pytorch"] = None  # type: ignore[assignment]  # import fails
    try:
        with pytest.raises(OptionalDependencyError, match=r"geolip\[baselines\]"):
            PatchCodec(CodecConfig("fsq"), channels=1)
    finally:
        if saved is None:
            del sys.modules["vector_quantize_pytorch"]
        else:
            sys.modules["vector_quantize_pytorch"] = saved


def test_config_refuses_unknown_quantizers_and_empty_sizes() -> None:
    with pytest.raises(ValueError, match="quantizer"):
        CodecConfig("lfq")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tokens_per_patch"):
        CodecConfig("fsq", tokens_per_patch=0)


@pytest.fixture(scope="module")
def shapes() -> tuple[torch.Tensor, torch.Tensor]:
    train = open_dataset("shapes:n=48,size=16,seed=0,channels=1").images
    test = open_dataset("shapes:n=8,size=16,seed=1,channels=1").images
    return train, test


@pytest.mark.parametrize("quantizer", ["fsq", "vq"])
def test_a_trained_codec_codes_the_vocabulary_and_beats_the_mean_image(
    quantizer: str, shapes: tuple[torch.Tensor, torch.Tensor]
) -> None:
    pytest.importorskip("vector_quantize_pytorch")
    train, test = shapes
    config = CodecConfig(
        quantizer,
        patch=4,
        tokens_per_patch=2,
        codes=64,
        hidden=64,  # type: ignore[arg-type]
        steps=150,
        batch_codes=256,
        lr=3e-3,
        seed=0,
    )
    codec = train_patch_codec(train, config)
    assert codec.vocab_size == 64 and not codec.training
    codes = codec.codes(test)
    assert codes.shape == (8, 16, 2) and codes.dtype == torch.int64
    assert int(codes.min()) >= 0 and int(codes.max()) < 64
    decoded = codec.decode(codes, (16, 16))
    assert decoded.shape == test.shape
    mse = (decoded - test).square().mean()
    mean_image = (train.mean(0, keepdim=True) - test).square().mean()
    assert mse < 0.8 * mean_image
    again = train_patch_codec(train, config).codes(test)  # seeded: the same codes
    assert torch.equal(again, codes)
    with pytest.raises(IncompatibleInputError, match="expected images"):
        codec.codes(torch.zeros(1, 3, 16, 16))
