"""Patch quantisers the image tokenizer is compared with: one or more codes per s × s pixel patch.

    image (B, C, H, W) → non-overlapping s × s patches (B, P, C·s²), P = (H/s)·(W/s)
      k-means VQ: the nearest of n Euclidean centres (scikit-learn)          → 1 code per patch
      learned:    MLP encoder → t latents of d dims → FSQ or VQ (n codes)   → t codes per patch
                  → MLP decoder → the patch

The learned codecs use ``vector-quantize-pytorch`` (``pip install 'geolip[baselines]'``), imported
only when one is built. FSQ (finite scalar quantisation) rounds each of d = len(levels) bounded
latents to its own grid, so its n = ∏ levels codes are implicit; VQ keeps an explicit codebook of
n vectors of d dims, updated by an exponential moving average, k-means initialised, dead codes
replaced. Every code is an id in [0, n); an image is P·t ids.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from sklearn.cluster import KMeans
from torch import nn
from torch.nn.functional import fold, unfold

from geolip._progress import progress_bar
from geolip.errors import IncompatibleInputError, OptionalDependencyError

BASELINES_INSTALL = "pip install 'geolip[baselines]'"
CODE_CHUNK = 1024
"""Patches quantised at once by :meth:`PatchCodec.codes` (bounds the distance matrices)."""
MAX_LEVEL = 8
"""Largest FSQ level :func:`fsq_levels` aims for (the FSQ paper's levels are 5 to 8)."""


def image_patches(images: torch.Tensor, s: int) -> torch.Tensor:
    """Images (B, C, H, W) → non-overlapping s × s patches (B, P, C·s²), raster order.

    Raises:
        IncompatibleInputError: H or W is not a multiple of s.
    """
    h, w = images.shape[-2:]
    if h % s or w % s:
        raise IncompatibleInputError(f"images of {h}×{w} do not split into {s}×{s} patches")
    return unfold(images, s, stride=s).transpose(1, 2)


def patches_to_images(patches: torch.Tensor, size: tuple[int, int], s: int) -> torch.Tensor:
    """Patches (B, P, C·s²) of an (H, W) image → images (B, C, H, W); inverse of
    :func:`image_patches`."""
    return fold(patches.transpose(1, 2), size, s, stride=s)


class KMeansPatchVQ:
    """k-means VQ on s × s pixel patches (Euclidean, scikit-learn), one code per patch.

    Args:
        train: images (N, C, H, W) whose patches are clustered.
        s: patch side. k: codes. seed: the patch sample and k-means start.
        max_vectors: patches fitted, a seeded sample (k-means: one start, at most 50 steps).
    """

    def __init__(self, train: torch.Tensor, s: int, k: int, seed: int, max_vectors: int) -> None:
        self.s, self.channels = s, train.shape[1]
        vectors = image_patches(train, s).reshape(-1, self.channels * s * s)
        gen = torch.Generator().manual_seed(seed)
        pick = torch.randperm(vectors.shape[0], generator=gen)[:max_vectors]
        fit = KMeans(n_clusters=k, n_init=1, max_iter=50, random_state=seed)
        fit.fit(vectors[pick].numpy())
        self.centers = torch.from_numpy(fit.cluster_centers_).float()

    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) → codes (B, P) int64, the nearest centre of every patch."""
        p = image_patches(x, self.s)
        return torch.cdist(p, self.centers.expand(p.shape[0], -1, -1)).argmin(dim=-1)

    def decode(self, codes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Codes (B, P) → images (B, C, H, W) of size (H, W), each patch its centre."""
        return patches_to_images(self.centers[codes], size, self.s)


def fsq_levels(codes: int) -> list[int]:
    """FSQ levels whose product is exactly ``codes``: the prime factors spread over
    ⌈log_8 codes⌉ levels, each factor (largest first) onto the smallest level so far, levels
    sorted high to low (512 → [8, 8, 8], 2048 → [8, 8, 8, 4], 100 → [5, 5, 4]).

    Raises:
        ValueError: codes < 2.
    """
    if codes < 2:
        raise ValueError(f"FSQ needs at least 2 codes, got {codes}")
    factors, rest, p = [], codes, 2
    while rest > 1:
        while rest % p == 0:
            factors.append(p)
            rest //= p
        p += 1
    levels = [1] * max(1, math.ceil(math.log(codes, MAX_LEVEL) - 1e-9))
    for f in sorted(factors, reverse=True):
        levels[levels.index(min(levels))] *= f
    return sorted((lv for lv in levels if lv > 1), reverse=True)


@dataclass(frozen=True)
class CodecConfig:
    """A learned patch codec and its training (module docstring).

    quantizer: ``fsq`` or ``vq``; patch: s; tokens_per_patch: t; codes: n, the vocabulary
    (FSQ levels from :func:`fsq_levels`); hidden: width of the one hidden layer (GELU) of the
    encoder and of the decoder; vq_dim: d of a VQ code (FSQ: d = len(levels)); commitment:
    weight of VQ's commitment loss; steps, batch_codes, lr: Adam with a cosine decay to 0 on
    the patch MSE, each batch ⌈batch_codes / t⌉ patches drawn with replacement (so the
    quantiser sees about batch_codes latents a step whatever t); seed: weights, VQ's k-means
    start and dead-code draws, and the batches.
    """

    quantizer: Literal["fsq", "vq"]
    patch: int = 4
    tokens_per_patch: int = 1
    codes: int = 512
    hidden: int = 256
    vq_dim: int = 4
    commitment: float = 0.25
    steps: int = 800
    batch_codes: int = 2048
    lr: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.quantizer not in ("fsq", "vq"):
            raise ValueError(f"quantizer must be 'fsq' or 'vq', got {self.quantizer!r}")
        for name in ("patch", "tokens_per_patch", "hidden", "vq_dim", "steps", "batch_codes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.codes < 2:
            raise ValueError(f"codes must be at least 2, got {self.codes}")


def _vector_quantize_pytorch() -> Any:
    try:
        import vector_quantize_pytorch
    except ImportError as err:
        raise OptionalDependencyError(
            "vector-quantize-pytorch", "the FSQ and VQ tokenizer baselines", BASELINES_INSTALL
        ) from err
    return vector_quantize_pytorch


def _mlp(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, d_out))


class PatchCodec(nn.Module):
    """A learned patch codec (module docstring), untrained; :func:`train_patch_codec` fits it.

    Args:
        config: the codec (:class:`CodecConfig`). channels: C of the images it takes.

    Raises:
        OptionalDependencyError: ``vector-quantize-pytorch`` is not installed.
    """

    def __init__(self, config: CodecConfig, channels: int) -> None:
        super().__init__()
        vqp = _vector_quantize_pytorch()
        self.config, self.channels = config, channels
        if config.quantizer == "fsq":
            self.quantizer = vqp.FSQ(levels=fsq_levels(config.codes))
            self.code_dim = len(fsq_levels(config.codes))
        else:
            self.quantizer = vqp.VectorQuantize(
                dim=config.vq_dim,
                codebook_size=config.codes,
                kmeans_init=True,
                threshold_ema_dead_code=2,
                commitment_weight=config.commitment,
            )
            self.code_dim = config.vq_dim
        if self.quantizer.codebook_size != config.codes:
            raise AssertionError(f"{self.quantizer.codebook_size} codes, not {config.codes}")
        patch_dim, latent = channels * config.patch**2, config.tokens_per_patch * self.code_dim
        self.encoder = _mlp(patch_dim, config.hidden, latent)
        self.decoder = _mlp(latent, config.hidden, patch_dim)

    @property
    def vocab_size(self) -> int:
        """n: the codes a token takes."""
        return int(self.quantizer.codebook_size)

    def _quantize(self, patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Patches (N, C·s²) → (decoded patches (N, C·s²), codes (N, t) int64, auxiliary loss)."""
        z = self.encoder(patches).reshape(patches.shape[0], self.config.tokens_per_patch, -1)
        if self.config.quantizer == "fsq":
            q, codes = self.quantizer(z)
            aux = z.new_zeros(())
        else:
            q, codes, aux = self.quantizer(z)
        return self.decoder(q.reshape(patches.shape[0], -1)), codes.long(), aux.sum()

    def _from_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (N, t) → decoded patches (N, C·s²)."""
        if self.config.quantizer == "fsq":
            q = self.quantizer.indices_to_codes(codes)
        else:
            q = self.quantizer.get_output_from_indices(codes)
        return self.decoder(q.reshape(codes.shape[0], -1))

    @torch.no_grad()
    def codes(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) → codes (B, P, t) int64 in [0, n)."""
        self._check(images)
        patches = image_patches(images, self.config.patch)
        flat = patches.reshape(-1, patches.shape[-1])
        codes = torch.cat([self._quantize(chunk)[1] for chunk in flat.split(CODE_CHUNK)])
        return codes.reshape(*patches.shape[:2], -1)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Codes (B, P, t) of (H, W) images → images (B, C, H, W)."""
        b, p, t = codes.shape
        flat = codes.reshape(b * p, t)
        patches = torch.cat([self._from_codes(chunk) for chunk in flat.split(CODE_CHUNK)])
        return patches_to_images(patches.reshape(b, p, -1), size, self.config.patch)

    def _check(self, images: torch.Tensor) -> None:
        if images.ndim != 4 or images.shape[1] != self.channels:
            raise IncompatibleInputError(
                f"expected images (B, {self.channels}, H, W), got {tuple(images.shape)}"
            )


def train_patch_codec(
    images: torch.Tensor,
    config: CodecConfig,
    *,
    progress: bool = False,
    on_step: Callable[[int, float], None] | None = None,
) -> PatchCodec:
    """Fit a :class:`PatchCodec` to the patches of ``images`` (N, C, H, W); deterministic under
    ``config.seed`` (the global RNG is restored afterwards). Returns it in eval mode.

    ``on_step(step, loss)`` sees the patch MSE (plus VQ's commitment term) of every step.
    """
    pool = image_patches(images, config.patch).reshape(-1, images.shape[1] * config.patch**2)
    gen = torch.Generator().manual_seed(config.seed)
    batch = math.ceil(config.batch_codes / config.tokens_per_patch)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        codec = PatchCodec(config, images.shape[1])
        codec.train()
        optimizer = torch.optim.Adam(codec.parameters(), lr=config.lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.steps)
        with torch.enable_grad(), progress_bar(progress) as bar:
            label = f"{config.quantizer} {config.patch}×{config.patch}, t={config.tokens_per_patch}"
            task = bar.add_task(label, total=config.steps)
            for step in range(config.steps):
                x = pool[torch.randint(pool.shape[0], (batch,), generator=gen)]
                decoded, _, aux = codec._quantize(x)
                loss = (decoded - x).square().mean() + aux
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
                if on_step is not None:
                    on_step(step, loss.item())
                bar.advance(task)
    return codec.eval()
