"""Discrete diffusion over axis tokens: absorbing-state (MaskGIT) denoising.

An image is the tokenizer's grid of axis tokens, N = gh·gw·V·k ids in [0, 2K) (axis i with its
sign: :mod:`geolip.downstream.tokenizer`). The forward process replaces a fraction γ(r) of them
by one extra ``[mask]`` id (:mod:`geolip.downstream.diffusion_schedules`); the denoiser, a small
transformer encoder, predicts every masked token (cross-entropy over the 2K axis ids at masked
positions). Sampling starts from an all-masked grid and, over T steps, samples every masked
token, keeps the most confident and masks the rest again, ⌊γ((t + 1)/T)·N⌋ of them after step
t (Chang et al. 2022). The structural tokens (``<image_start>``, ``<row_start>``,
``<image_end>``) are never modelled: they are placed by construction around the sampled grid
(:meth:`GeolipImageTokenizer.sequences`), so every sample is a well-formed sequence.

Positions are factorised and carry no learned table over the patch grid, so a denoiser trained
on one grid runs on any other (a 256² image is a longer sequence than a 64² one):

    embedding(token) + W·[sin, cos](π f u) + W·[sin, cos](π f w) + E_v[v] + E_j[j]

u = (row + ½)/gh and w = (col + ½)/gw are the patch centre in the unit square (continuous 2-D
sinusoids, f = 1 … 2^(F−1)), v the row within the patch (learned, V entries), j the rank among
the k axes of that row (learned, k entries). The grid is thus read relative to the image frame:
on a 2× longer side every patch sits between two positions the denoiser has seen.

Class conditioning: a class token (a learned embedding of the label, or of the null class
``num_classes`` for "no class") is prepended to the sequence; training drops the label to the
null class with probability ``p_uncond``, so one model samples with and without a class and
classifier-free guidance mixes the two.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt
from torch import nn
from torch.nn.functional import cross_entropy

from geolip.downstream.diffusion_schedules import Schedule, mask_ratio
from geolip.downstream.tokenizer import GeolipImageTokenizer
from geolip.errors import IncompatibleInputError

Grid = tuple[int, int]


class DenoiserConfig(BaseModel):
    """Shape of the denoiser; frozen, unknown fields refused.

    Attributes:
        axis_tokens: 2K, the axis ids it predicts (the mask id is 2K).
        rows_per_patch: V; top_k: k. Together they fix the tokens per patch, V·k.
        num_classes: labels it is conditioned on (0: unconditional; the null class is
            ``num_classes`` either way).
        dim, depth, heads: transformer width, layers and attention heads (heads divide dim).
        frequencies: F, sinusoid frequencies per image axis (module docstring).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    axis_tokens: PositiveInt
    rows_per_patch: PositiveInt
    top_k: PositiveInt = 1
    num_classes: NonNegativeInt = 0
    dim: PositiveInt = 128
    depth: PositiveInt = 4
    heads: PositiveInt = 4
    frequencies: int = Field(6, ge=1, le=16)


class AxisDenoiser(nn.Module):
    """Masked axis tokens (B, N) of a grid → logits (B, N, 2K) (module docstring)."""

    def __init__(self, config: DenoiserConfig) -> None:
        super().__init__()
        c = config
        if c.dim % c.heads:
            raise ValueError(f"heads={c.heads} must divide dim={c.dim}")
        self.config = c
        self.mask_id = c.axis_tokens
        self.token = nn.Embedding(c.axis_tokens + 1, c.dim)
        self.classes = nn.Embedding(c.num_classes + 1, c.dim)
        self.rows = nn.Embedding(c.rows_per_patch, c.dim)
        self.ranks = nn.Embedding(c.top_k, c.dim)
        self.where = nn.Linear(4 * c.frequencies, c.dim)
        layer = nn.TransformerEncoderLayer(
            c.dim,
            c.heads,
            4 * c.dim,
            dropout=0.0,
            batch_first=True,
            norm_first=True,
            activation="gelu",
        )
        self.encoder = nn.TransformerEncoder(layer, c.depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(c.dim)
        self.head = nn.Linear(c.dim, c.axis_tokens)

    @property
    def per_patch(self) -> int:
        """Tokens per patch, V·k."""
        return self.config.rows_per_patch * self.config.top_k

    def positions(self, grid: Grid) -> torch.Tensor:
        """(N, dim) position embeddings of a gh × gw grid, N = gh·gw·V·k in token order."""
        gh, gw = grid
        c = self.config
        device = self.where.weight.device
        n = torch.arange(gh * gw * self.per_patch, device=device)
        patch, v, j = n // self.per_patch, (n // c.top_k) % c.rows_per_patch, n % c.top_k
        u = ((patch // gw).double() + 0.5) / gh
        w = ((patch % gw).double() + 0.5) / gw
        f = math.pi * 2.0 ** torch.arange(c.frequencies, device=device, dtype=torch.float64)
        angles = torch.cat([u[:, None] * f, w[:, None] * f], dim=1)  # (N, 2F)
        waves = torch.cat([angles.sin(), angles.cos()], dim=1).float()
        return self.where(waves) + self.rows(v) + self.ranks(j)

    def forward(self, ids: torch.Tensor, grid: Grid, labels: torch.Tensor) -> torch.Tensor:
        """Logits over the 2K axis ids at every position.

        Args:
            ids: (B, N) int64 in [0, 2K], 2K = the mask id; N = gh·gw·V·k.
            grid: (gh, gw).
            labels: (B,) int64 in [0, num_classes], num_classes = the null class.

        Returns:
            (B, N, 2K) float32 logits.
        """
        gh, gw = grid
        if ids.ndim != 2 or ids.shape[1] != gh * gw * self.per_patch:
            raise IncompatibleInputError(
                f"expected ids (B, {gh * gw * self.per_patch}) for a {gh}×{gw} grid, got "
                f"{tuple(ids.shape)}"
            )
        h = self.token(ids) + self.positions(grid)  # (B, N, dim)
        h = torch.cat([self.classes(labels)[:, None], h], dim=1)  # class token first
        return self.head(self.norm(self.encoder(h)[:, 1:]))


def null_labels(n: int, model: AxisDenoiser) -> torch.Tensor:
    """(n,) labels of the null class ("no class")."""
    return torch.full((n,), model.config.num_classes, dtype=torch.int64)


def masked_loss(
    model: AxisDenoiser,
    ids: torch.Tensor,
    grid: Grid,
    labels: torch.Tensor,
    schedule: Schedule,
    generator: torch.Generator,
    p_uncond: float = 0.1,
) -> torch.Tensor:
    """One training loss: mask a γ(r) fraction of each sequence, r ~ U(0, 1), and score the
    prediction of the masked tokens.

    Args:
        ids: (B, N) clean axis ids in [0, 2K).
        labels: (B,) class ids in [0, num_classes]; each is replaced by the null class with
            probability ``p_uncond``.
        generator: the only randomness (r, masked positions, dropped labels), on the CPU.

    Returns:
        scalar: mean cross-entropy over all masked positions of the batch.
    """
    b, n = ids.shape
    r = torch.rand(b, generator=generator)
    count = (mask_ratio(schedule, r) * n).ceil().clamp(1, n).long()  # (B,)
    order = torch.rand(b, n, generator=generator).argsort(dim=1).argsort(dim=1)  # random ranks
    masked = order < count[:, None]
    drop = torch.rand(b, generator=generator) < p_uncond
    labels = torch.where(drop, model.config.num_classes, labels)
    device = model.head.weight.device
    noisy = torch.where(masked, model.mask_id, ids).to(device)
    logits = model(noisy, grid, labels.to(device))
    return cross_entropy(logits[masked.to(device)], ids.to(device)[masked.to(device)])


@dataclass(frozen=True)
class SamplingOptions:
    """How :func:`sample_ids` unmasks.

    Attributes:
        steps: T, the number of denoiser calls.
        schedule: how many tokens stay masked after each step.
        temperature: softmax temperature of the token draws.
        choice_temperature: scale of the Gumbel noise added to the confidences that choose
            which tokens stay masked, annealed to 0 over the steps (MaskGIT's 4.5).
        guidance: classifier-free guidance w: logits = c + w (c − u) of the conditional c and
            unconditional u predictions (0: the conditional alone, one call per step).
    """

    steps: int = 12
    schedule: Schedule = "cosine"
    temperature: float = 1.0
    choice_temperature: float = 4.5
    guidance: float = 0.0


@torch.no_grad()
def sample_ids(
    model: AxisDenoiser,
    grid: Grid,
    labels: torch.Tensor,
    generator: torch.Generator,
    options: SamplingOptions = SamplingOptions(),
    *,
    known: torch.Tensor | None = None,
    resample: torch.Tensor | None = None,
) -> torch.Tensor:
    """Iterative confidence-based unmasking (module docstring).

    Args:
        grid: (gh, gw), any size: N = gh·gw·V·k tokens per sample.
        labels: (B,) class ids, the null class for unconditional samples.
        generator: a CPU generator; the same state gives the same ids.
        known: (B, N) ids kept where ``resample`` is False (inpainting); None: all sampled.
        resample: (B, N) bool, the positions to sample (needs ``known``).

    Returns:
        (B, N) int64 axis ids in [0, 2K), no mask left.
    """
    b, n = labels.shape[0], grid[0] * grid[1] * model.per_patch
    if (known is None) != (resample is None):
        raise ValueError("known and resample go together")
    if known is None or resample is None:
        ids = torch.full((b, n), model.mask_id, dtype=torch.int64)
    else:
        if known.shape != (b, n) or resample.shape != (b, n):
            raise IncompatibleInputError(f"known and resample must be ({b}, {n})")
        if bool(((known < 0) | (known >= model.mask_id)).any()):
            raise IncompatibleInputError(f"known ids must be axis ids in [0, {model.mask_id})")
        ids = torch.where(resample, model.mask_id, known.long())
    masked = ids == model.mask_id
    total = masked.sum(dim=1)  # (B,) tokens to sample
    device = model.head.weight.device
    was_training = model.training
    model.eval()
    null = null_labels(b, model).to(device)
    for t in range(options.steps):
        logits = model(ids.to(device), grid, labels.to(device)).float()
        if options.guidance:
            free = model(ids.to(device), grid, null).float()
            logits = logits + options.guidance * (logits - free)
        logp = torch.log_softmax(logits.cpu() / options.temperature, dim=-1)  # (B, N, 2K)
        drawn = torch.multinomial(logp.exp().reshape(b * n, -1), 1, generator=generator)
        drawn = drawn.reshape(b, n)
        drawn = torch.where(masked, drawn, ids)
        progress = (t + 1) / options.steps
        left = (mask_ratio(options.schedule, progress) * total).floor().long()
        left = torch.minimum(left, (masked.sum(dim=1) - 1).clamp(min=0))  # ≥ 1 fixed a step
        confidence = logp.gather(-1, drawn[..., None])[..., 0]
        uniform = torch.rand(b, n, generator=generator).clamp(1e-12, 1 - 1e-12)
        gumbel = -torch.log(-torch.log(uniform))
        confidence = confidence + options.choice_temperature * (1 - progress) * gumbel
        confidence = torch.where(masked, confidence, torch.inf)
        rank = confidence.argsort(dim=1).argsort(dim=1)
        masked = rank < left[:, None]  # the least confident stay masked
        ids = torch.where(masked, model.mask_id, drawn)
    model.train(was_training)
    return ids


@dataclass
class DiffusionModel:
    """A trained denoiser with the tokenizer whose tokens it models.

    Attributes:
        denoiser: the network.
        tokenizer: encodes training images and decodes samples.
        classes: names of the classes it is conditioned on (empty: unconditional).
        train_size: (H, W) of the training images (the smallest, for a model trained on
            several sizes): sampling's default size, nothing more (positions are relative to
            the image frame, so any size samples).
        schedule: the masking schedule it was trained with (sampling's default).
    """

    denoiser: AxisDenoiser
    tokenizer: GeolipImageTokenizer
    classes: tuple[str, ...]
    train_size: tuple[int, int]
    schedule: Schedule = "cosine"

    def labels(self, n: int, label: int | str | None = None) -> torch.Tensor:
        """(n,) label ids: ``label`` by index or class name, or the null class for None.

        Raises:
            IncompatibleInputError: an unknown class, or a class for an unconditional model.
        """
        if label is None:
            return null_labels(n, self.denoiser)
        if isinstance(label, str):
            if label not in self.classes:
                raise IncompatibleInputError(
                    f"unknown class {label!r}; this model knows {list(self.classes) or 'none'}"
                )
            label = self.classes.index(label)
        if not 0 <= label < len(self.classes):
            raise IncompatibleInputError(
                f"class index {label} outside 0..{len(self.classes) - 1}"
                if self.classes
                else "this model is unconditional; it takes no class"
            )
        return torch.full((n,), label, dtype=torch.int64)

    def sample(
        self,
        n: int,
        size: tuple[int, int] | None = None,
        label: int | str | Sequence[int] | None = None,
        *,
        seed: int = 0,
        options: SamplingOptions | None = None,
    ) -> torch.Tensor:
        """n token sequences (n, L) of an image of ``size`` (H, W), default the training size,
        with the structural tokens placed; decode them with ``tokenizer.batch_decode``.

        ``label``: one class (index or name) for all, a sequence of n indices, or None. The
        same seed gives the same tokens."""
        grid = self.tokenizer.grid(size or self.train_size)
        if isinstance(label, Sequence) and not isinstance(label, str):
            if len(label) != n:
                raise IncompatibleInputError(f"{len(label)} labels for {n} samples")
            labels = torch.cat([self.labels(1, int(y)) for y in label])
        else:
            labels = self.labels(n, label)
        opts = options or SamplingOptions(schedule=self.schedule)
        ids = sample_ids(self.denoiser, grid, labels, torch.Generator().manual_seed(seed), opts)
        return self.tokenizer.sequences(ids, grid)
