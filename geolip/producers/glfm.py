"""GLFM, geometric lookup flow matching (spec §D; upstream code not stored), read top to bottom.

Class-conditional rectified flow: x_t = (1 − t)·ε + t·x, ε ~ N(0, I), t ~ U(0, 1); the network
regresses the velocity v = x − ε and samples by Euler steps from t = 0 (noise) to t = 1 (data).

    x_t (B, C, S, S)
      → conv encoder → h (B, width, g, g), g = S / 4                      ADDRESS
      → address points on S^(D−1): coarse = proj(mean of h over positions),
                                   fine   = proj(h) at each of the g² positions
      → lookup: 1 − cos against each anchor at SLERP phases between home and now
        (anchor_constellation.py), fine lookups averaged over positions
      → concat(address, time embedding, class embedding) → fuse        CONDITION
      → n_blocks residual MLP blocks → Linear → (width, g, g) → conv decoder → v    GENERATE

Variants (the seed's experiments): ``regulator`` (v1) keeps the encoder map and adds the fine
lookup as a side channel through a gate σ(g), g starting at −3 (≈ 0.047); ``bottleneck`` (v3)
sends everything through the coarse address; ``glfm`` (v4) through coarse + fine. With
``lookup="linear"`` the same points go through an unconstrained Linear(D → n_phases·A) + GELU
instead: the plain flow model of the same encoder, decoder and size, without the constellation.

Our inferences where the sources are silent (spec §H.28), so numbers are not comparable with
upstream's: the convention above, the 3 × 3 / 4 × 4-stride-2 convolutions, the mean over
positions as the fine aggregation, the sinusoidal time embedding, no "noise embedding", and
v3 as the coarse scale alone (768 = 256 anchors × 3 phases of one point).

As a producer, the rows of a 32 × 32 tile (``image_size``) are its address points at t = 1 (the
clean image): the g² positions of the fine projection (the coarse projection applied at each
position for ``bottleneck``, whose pooled address is the normalised mean of those pre-images).
Larger images are cut into tiles, raster order; the tile is reflect-padded up to a multiple.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt, model_validator
from torch import nn
from torch.nn.functional import gelu, mse_loss

from geolip.producers.anchor_constellation import AnchorConstellation
from geolip.producers.contract import Geometry, ProducerModule
from geolip.producers.patches import check_images, pad_to_multiple
from geolip.solvers.anchor_drift import drift_summary
from geolip.solvers.linalg import sphere_normalize

Variant = Literal["regulator", "bottleneck", "glfm"]
DOWNSAMPLE = 4
"""The encoder halves the side twice: an S × S image becomes a g × g map, g = S / 4."""
TIME_SCALE = 1000.0
"""t ∈ [0, 1] is scaled by this before the sinusoidal features (the usual diffusion range)."""


class GLFMConfig(BaseModel):
    """Every hyper-parameter of a GLFM; frozen, unknown fields refused.

    Attributes:
        variant: ``regulator`` (v1), ``bottleneck`` (v3) or ``glfm`` (v4); see the module doc.
        lookup: ``constellation`` (triangulation against learned anchors) or ``linear`` (the
            plain control: an unconstrained Linear + GELU of the same points).
        channels, image_size, n_classes: C, S (a multiple of 4) and the number of classes.
        width: encoder channels (a multiple of 4); D: the address sphere is S^(D−1).
        n_anchors, phases: A anchors looked up at these SLERP phases (0 = home, 1 = now).
        hidden, n_blocks: width and depth of the fuse/generate MLP (and the embeddings).
        gate_init: the regulator's gate logit at initialisation.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    variant: Variant = "glfm"
    lookup: Literal["constellation", "linear"] = "constellation"
    channels: PositiveInt = 3
    image_size: PositiveInt = 32
    n_classes: PositiveInt = 6
    width: PositiveInt = 256
    D: Annotated[int, Field(ge=2)] = 16
    n_anchors: PositiveInt = 256
    phases: tuple[Annotated[float, Field(ge=0, le=1)], ...] = (0.0, 1 / 3, 2 / 3)
    hidden: PositiveInt = 1024
    n_blocks: NonNegativeInt = 4
    gate_init: Annotated[float, Field(allow_inf_nan=False)] = -3.0

    @model_validator(mode="after")
    def _shapes_fit(self) -> GLFMConfig:
        for name in ("image_size", "width"):
            if getattr(self, name) % DOWNSAMPLE:
                raise ValueError(
                    f"{name} must be a multiple of {DOWNSAMPLE}, got {getattr(self, name)}"
                )
        if not self.phases:
            raise ValueError("phases needs at least one SLERP phase in [0, 1]")
        return self

    def dataset_mismatch(self, channels: int, classes: int) -> str | None:
        """Why images of ``channels`` channels in ``classes`` classes cannot train this model,
        or ``None`` when they can."""
        if channels != self.channels:
            return f"its images have {channels} channels, the model takes {self.channels}"
        if classes > self.n_classes:
            return f"it has {classes} classes, the model only {self.n_classes} (n_classes)"
        return None

    @property
    def grid(self) -> int:
        """g, the side of the encoder's map."""
        return self.image_size // DOWNSAMPLE

    @property
    def scales(self) -> tuple[str, ...]:
        """The address scales the variant projects: ``coarse`` and/or ``fine``."""
        return {"regulator": ("fine",), "bottleneck": ("coarse",), "glfm": ("coarse", "fine")}[
            self.variant
        ]


class GLFM(ProducerModule):
    """Velocity network v(x_t, t, class) with a constellation bottleneck; see the module doc."""

    config_class = GLFMConfig

    def __init__(self, config: GLFMConfig, preset: str | None = None) -> None:
        super().__init__()
        self.config, self.preset = config, preset
        c, w, g = config, config.width, config.grid
        self.encoder = nn.Sequential(
            nn.Conv2d(c.channels, w // 4, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(w // 4, w // 2, 4, stride=2, padding=1),
            nn.GELU(),
            nn.Conv2d(w // 2, w, 4, stride=2, padding=1),
            nn.GELU(),
        )
        self.project = nn.ModuleDict({scale: nn.Linear(w, c.D) for scale in c.scales})
        n_look = len(c.phases) * c.n_anchors
        if c.lookup == "constellation":
            self.constellation = AnchorConstellation(c.n_anchors, c.D, c.phases)
        else:
            self.linear_lookup = nn.Linear(c.D, n_look)
        self.time_embed = nn.Sequential(
            nn.Linear(c.hidden, c.hidden), nn.GELU(), nn.Linear(c.hidden, c.hidden)
        )
        self.class_embed = nn.Embedding(c.n_classes, c.hidden)
        if c.variant == "regulator":
            self.side = nn.Linear(n_look, w)
            self.gate = nn.Parameter(torch.tensor(c.gate_init))
            self.condition = nn.Linear(c.hidden, w)
        else:
            address = len(c.scales) * n_look
            self.fuse = nn.Sequential(
                nn.Linear(address + 2 * c.hidden, c.hidden),
                nn.GELU(),
                nn.Linear(c.hidden, c.hidden),
            )
            self.blocks = nn.ModuleList(
                nn.Sequential(
                    nn.LayerNorm(c.hidden),
                    nn.Linear(c.hidden, c.hidden),
                    nn.GELU(),
                    nn.Linear(c.hidden, c.hidden),
                )
                for _ in range(c.n_blocks)
            )
            self.expand = nn.Linear(c.hidden, w * g * g)
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(w, w // 2, 4, stride=2, padding=1),
            nn.GELU(),
            nn.ConvTranspose2d(w // 2, w // 4, 4, stride=2, padding=1),
            nn.GELU(),
            nn.Conv2d(w // 4, c.channels, 3, padding=1),
        )

    # ------------------------------------------------------------------------- identity
    @property
    def geometry(self) -> Geometry:
        c = self.config
        return Geometry(
            D=c.D, rows_per_token=c.grid**2, channels=c.channels, patch_size=c.image_size
        )

    # --------------------------------------------------------------------------- forward
    def forward(self, x_t: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Velocity (B, C, S, S) at x_t (B, C, S, S), times t (B,) in [0, 1], classes (B,)."""
        self.check_batch(x_t, labels)
        if t.shape != labels.shape:
            raise ValueError(f"expected times of shape {tuple(labels.shape)}, got {tuple(t.shape)}")
        c = self.config
        h = self.encoder(x_t)  # (B, width, g, g)
        time, label = self.time_embed(_sinusoidal(t, c.hidden)), self.class_embed(labels)
        if c.variant == "regulator":
            side = self.side(self._lookup(self._points(h, "fine")))  # (B, g², width)
            h = h + torch.sigmoid(self.gate) * side.transpose(1, 2).unflatten(-1, (c.grid,) * 2)
            h = h + self.condition(time + label)[..., None, None]
            return self.decoder(h)
        z = self.fuse(torch.cat([self._address(h), time, label], dim=-1))  # (B, hidden)
        for block in self.blocks:
            z = z + block(z)
        return self.decoder(self.expand(z).unflatten(-1, (c.width, c.grid, c.grid)))

    def _points(self, h: torch.Tensor, scale: str) -> torch.Tensor:
        """Address points of ``scale``: coarse (B, D) from the pooled map, fine (B, g², D);
        on the sphere for the constellation lookup, raw for the linear control."""
        feats = h.mean(dim=(2, 3)) if scale == "coarse" else h.flatten(2).transpose(1, 2)
        points = self.project[scale](feats)
        return sphere_normalize(points) if self.config.lookup == "constellation" else points

    def _lookup(self, points: torch.Tensor) -> torch.Tensor:
        """(..., D) → (..., n_phases·A): triangulation, or the linear control."""
        if self.config.lookup == "constellation":
            return self.constellation.triangulate(points)
        return gelu(self.linear_lookup(points))

    def _address(self, h: torch.Tensor) -> torch.Tensor:
        """(B, width, g, g) → (B, n_scales·n_phases·A); fine lookups averaged over positions."""
        parts = []
        for scale in self.config.scales:
            looked = self._lookup(self._points(h, scale))
            parts.append(looked if scale == "coarse" else looked.mean(dim=1))
        return torch.cat(parts, dim=-1)

    # ---------------------------------------------------------------------------- flow
    def training_pair(
        self, x: torch.Tensor, labels: torch.Tensor, generator: torch.Generator
    ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """((x_t, t, labels), v = x − ε) with ε ~ N(0, I) and t ~ U(0, 1) drawn from
        ``generator`` (on x's device)."""
        self.check_batch(x, labels)
        eps = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        t = torch.rand(x.shape[0], generator=generator, device=x.device, dtype=x.dtype)
        tt = t[:, None, None, None]
        return ((1 - tt) * eps + tt * x, t, labels), x - eps

    @torch.no_grad()
    def validation_metrics(
        self, x: torch.Tensor, labels: torch.Tensor, generator: torch.Generator
    ) -> dict[str, Any]:
        """Velocity MSE and mean cosine to the target on (x, labels) with draws from
        ``generator``; the anchor drift summary (constellation) and the gate (regulator)."""
        inputs, target = self.training_pair(x, labels, generator)
        v = self(*inputs)
        cos = nn.functional.cosine_similarity(v.flatten(1), target.flatten(1), dim=1)
        metrics: dict[str, Any] = {
            "mse": mse_loss(v, target).item(),
            "velocity_cos": cos.mean().item(),
        }
        if self.config.lookup == "constellation":
            metrics["anchor_drift"] = drift_summary(self.constellation.drift()).as_dict()
        if self.config.variant == "regulator":
            metrics["gate"] = torch.sigmoid(self.gate).item()
        return metrics

    @torch.no_grad()
    def sample(self, labels: torch.Tensor, steps: int = 50, seed: int = 0) -> torch.Tensor:
        """Class-conditional samples (B, C, S, S): ``steps`` Euler steps of dx/dt = v from
        ε (drawn from ``torch.Generator(device).manual_seed(seed)``) at t = 0 to t = 1. The same
        seed, labels and weights give the same images; the global RNG is untouched."""
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        c = self.config
        labels = labels.to(self.device)
        gen = torch.Generator(device=self.device).manual_seed(seed)
        shape = (labels.shape[0], c.channels, c.image_size, c.image_size)
        x = torch.randn(shape, generator=gen, device=self.device)
        with self.frozen():
            for k in range(steps):
                t = torch.full((shape[0],), k / steps, device=self.device)
                x = x + self(x, t, labels) / steps
        return x

    # ---------------------------------------------------------------------------- rows
    def encode_rows(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) → (B, P, g², D) unit address points of the clean image (t = 1), one
        token per S × S tile (raster order; H, W padded up to multiples of S)."""
        self._check_images(x, square=False)
        c, s = self.config, self.config.image_size
        padded, _ = pad_to_multiple(x, s)
        B, C, H, W = padded.shape
        tiles = padded.reshape(B, C, H // s, s, W // s, s).permute(0, 2, 4, 1, 3, 5)
        h = self.encoder(tiles.reshape(-1, C, s, s))  # (B·P, width, g, g)
        scale = "fine" if "fine" in c.scales else "coarse"
        points = self.project[scale](h.flatten(2).transpose(1, 2))  # (B·P, g², D)
        return sphere_normalize(points).unflatten(0, (B, -1))

    def check_batch(self, x: torch.Tensor, labels: torch.Tensor) -> None:
        """Refuse images that are not (B, C, S, S) floats or labels that are not B class ids
        in [0, n_classes), naming what was expected and found."""
        self._check_images(x, square=True)
        n = self.config.n_classes
        if labels.shape != (x.shape[0],) or labels.dtype != torch.long:
            raise ValueError(
                f"expected {x.shape[0]} int64 class ids of shape ({x.shape[0]},), got "
                f"{labels.dtype} of shape {tuple(labels.shape)}"
            )
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= n):
            bad = labels[(labels < 0) | (labels >= n)][0].item()
            raise ValueError(f"class id {bad} is out of range: this model has classes 0..{n - 1}")

    def _check_images(self, x: torch.Tensor, square: bool) -> None:
        c = self.config
        check_images(x, c.channels)
        if square and tuple(x.shape[-2:]) != (c.image_size, c.image_size):
            raise ValueError(
                f"expected {c.image_size}×{c.image_size} images, got "
                f"{x.shape[-2]}×{x.shape[-1]} (the flow runs at its training size)"
            )


def _sinusoidal(t: torch.Tensor, dim: int) -> torch.Tensor:
    """(B,) times → (B, dim) features [sin(s·t·f_k), cos(s·t·f_k)], f_k = 10000^(−k/half)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device) / max(half, 1))
    args = TIME_SCALE * t.float()[:, None] * freqs
    out = torch.cat([torch.sin(args), torch.cos(args)], dim=-1)
    return nn.functional.pad(out, (0, dim - 2 * half)).to(t.dtype)
