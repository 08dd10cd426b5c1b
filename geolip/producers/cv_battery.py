"""The CV-battery autoencoder: a VAE over many small battery blocks, read top to bottom.

    image (B, C, H, W) → patches (B, N, C·ps²), raster order
      → residual-MLP encoder → K blocks of V × D: raw rows R (B, N, K, V, D)          ENCODE
      → battery rows M = R / ‖R‖ on S^(D−1) (the producer rows), magnitudes log ‖R‖
      → NoSVD linear readout per block: μ, log σ = Linear(V·D + V → D) of [M, log ‖R‖]
      → z = μ + σ ⊙ ε (training; z = μ in eval), KL(q(z|x) ‖ N(0, I))                 VAE
      → inverse readout per block: M̂ = Linear(D → V·D)(z) (unbounded: KL bounds z)
      → residual-MLP decoder of the K blocks' M̂ → patches → stitch → recon             DECODE

Training loss (the Trainer adds ``aux_loss`` to MSE(recon, x)):
kl_weight · KL + w · mean over sampled blocks of (CV(M_block) − cv_target)², where CV is the
differentiable Cayley–Menger pentachoron CV of a block's V rows
(:func:`geolip.solvers.metrics.pentachoron_cv_batch`) and w the phase weight: ``cv_weight_align``
for the first ``align_epochs`` epochs (geometry first), ``cv_weight_hand`` after. With both
weights 0 it is the same model without the CV loss: the control.

Where this comes from: an SVD-free sphere-solver ablation (readout omega = Linear(V·D → D) of
the sphere-normalised rows, inverse readout Linear(D → V·D)) diverged four times; its write-up
names what the SVD had supplied (bounded inverse, magnitude in S) and recommends a real VAE
(μ, log σ, reparameterisation, KL) with a gradient-carrying CV loss at target 0.215, weight 20
in alignment epochs and 10 after. Our inferences: the readout also reads the rows' log
magnitudes (sphere normalisation alone discards the patch's scale, which the SVD's S kept),
each of the K blocks has its own readout and inverse, the CV loss is taken on
``cv_matrices`` blocks drawn per step (every block of every patch would cost B·N·K
determinant batches), and the CV is of the battery rows M.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import torch
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt, model_validator
from torch import nn
from torch.nn.functional import gelu

from geolip.producers.contract import Geometry, ProducerModule
from geolip.producers.patches import check_images, cut_padded
from geolip.producers.sphere_solver import _residual, _residual_blocks
from geolip.solvers.linalg import sphere_normalize
from geolip.solvers.metrics import cv_uniform, pentachoron_cv_batch

LOG_FLOOR = 1e-6
"""Row magnitudes are clamped to at least this before the log."""


class CVBatteryConfig(BaseModel):
    """Every hyper-parameter of a CV-battery autoencoder; frozen, unknown fields refused.

    Attributes:
        channels, patch_size: C and ps of the images.
        hidden, depth: width and residual blocks of the encoder and of the decoder.
        n_blocks, V, D: K battery blocks of V rows on S^(D−1) per patch (V ≥ 5, D ≥ 4: the
            pentachoron CV needs 5 points spanning a 4-volume).
        kl_weight: weight of the KL term.
        cv_target, cv_weight_align, cv_weight_hand, align_epochs: the CV loss and its phases.
        cv_matrices, cv_samples: blocks drawn per step for the CV loss, 5-row draws per block.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    channels: PositiveInt = 3
    patch_size: PositiveInt = 4
    hidden: PositiveInt = 128
    depth: NonNegativeInt = 1
    n_blocks: PositiveInt = 16
    V: Annotated[int, Field(ge=5)] = 8
    D: Annotated[int, Field(ge=4)] = 8
    kl_weight: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 1e-3
    cv_target: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 0.215
    cv_weight_align: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 20.0
    cv_weight_hand: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 10.0
    align_epochs: NonNegativeInt = 1
    cv_matrices: PositiveInt = 256
    cv_samples: Annotated[int, Field(ge=2)] = 16

    @model_validator(mode="after")
    def _cv_needs_rows(self) -> CVBatteryConfig:
        if self.V < 5 or self.D < 4:  # pydantic's bounds name the field; this names the reason
            raise ValueError("the pentachoron CV needs V >= 5 rows in D >= 4")
        return self

    def dataset_mismatch(self, channels: int, size: tuple[int, int]) -> str | None:
        """Why a dataset of ``channels``-channel images of ``size`` cannot train this model,
        or ``None`` when it can."""
        if channels != self.channels:
            return f"its images have {channels} channels, the model takes {self.channels}"
        if min(size) < self.patch_size:
            return f"its images ({size[0]}×{size[1]}) are smaller than one patch"
        return None

    @property
    def uses_cv(self) -> bool:
        """Whether any phase weights the CV loss."""
        return self.cv_weight_align > 0 or self.cv_weight_hand > 0


class BlockLinear(nn.Module):
    """K independent Linear maps, one per block: (..., K, n_in) → (..., K, n_out)."""

    def __init__(self, k: int, n_in: int, n_out: int) -> None:
        super().__init__()
        bound = 1 / math.sqrt(n_in)  # nn.Linear's default initialisation, per block
        self.weight = nn.Parameter(torch.empty(k, n_in, n_out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(k, n_out).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., K, n_in) → (..., K, n_out)."""
        return torch.einsum("...ki,kio->...ko", x, self.weight) + self.bias


class CVBattery(ProducerModule):
    """Encoder → K battery blocks → NoSVD readout → VAE latent → decoder; see the module doc."""

    config_class = CVBatteryConfig

    def __init__(self, config: CVBatteryConfig, preset: str | None = None) -> None:
        super().__init__()
        self.config, self.preset = config, preset
        c = config
        P, K, L = c.channels * c.patch_size**2, c.n_blocks, c.V * c.D
        self.enc_in = nn.Linear(P, c.hidden)
        self.enc_blocks = _residual_blocks(c.hidden, c.depth)
        self.enc_out = nn.Linear(c.hidden, K * L)
        nn.init.orthogonal_(self.enc_out.weight)
        self.readout_mu = BlockLinear(K, L + c.V, c.D)
        self.readout_log_sigma = BlockLinear(K, L + c.V, c.D)
        self.inverse_readout = BlockLinear(K, c.D, L)
        self.dec_in = nn.Linear(K * L, c.hidden)
        self.dec_blocks = _residual_blocks(c.hidden, c.depth)
        self.dec_out = nn.Linear(c.hidden, P)
        self._cv_weight = c.cv_weight_align if c.align_epochs > 0 else c.cv_weight_hand

    # ------------------------------------------------------------------------- identity
    @property
    def geometry(self) -> Geometry:
        """K·V rows on S^(D−1) per ps × ps patch (block-major: block k holds rows k·V … k·V+V−1)."""
        c = self.config
        return Geometry(
            D=c.D, rows_per_token=c.n_blocks * c.V, channels=c.channels, patch_size=c.patch_size
        )

    def start_epoch(self, epoch: int) -> None:
        """Set the CV weight of the phase ``epoch`` falls in (alignment, then hand)."""
        c = self.config
        self._cv_weight = c.cv_weight_align if epoch < c.align_epochs else c.cv_weight_hand

    def attention_alphas(self) -> list[torch.Tensor]:
        """No cross-attention: an empty list."""
        return []

    # --------------------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Whole pass on images (B, C, H, W) (bottom/right reflect-padded to multiples of ps).

        Returns:
            recon (B, C, H, W); M (B, N, K, V, D) battery rows; S = S_orig (B, N, K, D) their
            column norms (the linear-readout spectrum); mu, log_sigma (B, N, K, D); kl (the
            mean over patches of the KL summed over the K·D latents); in training,
            ``aux_loss`` = kl_weight·kl + w·cv_loss and ``cv_loss``.
        """
        patches, rebuild = self._patches(x)
        c = self.config
        h = _residual(gelu(self.enc_in(patches)), self.enc_blocks)  # (B, N, hidden)
        raw = self.enc_out(h).unflatten(-1, (c.n_blocks, c.V, c.D))  # (B, N, K, V, D)
        m = sphere_normalize(raw)
        log_mag = raw.norm(dim=-1).clamp(min=LOG_FLOOR).log()  # (B, N, K, V)
        feats = torch.cat([m.flatten(-2), log_mag], dim=-1)  # (B, N, K, V·D + V)
        mu, log_sigma = self.readout_mu(feats), self.readout_log_sigma(feats)
        z = mu
        if self.training:
            z = mu + log_sigma.exp() * torch.randn_like(mu)  # reparameterisation
        m_hat = self.inverse_readout(z)  # (B, N, K, V·D)
        out_patches = self.dec_out(_residual(gelu(self.dec_in(m_hat.flatten(-2))), self.dec_blocks))
        kl = 0.5 * (mu.square() + (2 * log_sigma).exp() - 1 - 2 * log_sigma)
        s = m.norm(dim=-2)  # (B, N, K, D)
        out = {
            "recon": rebuild(out_patches),
            "M": m,
            "S": s,
            "S_orig": s,
            "mu": mu,
            "log_sigma": log_sigma,
            "kl": kl.sum(dim=(-2, -1)).mean(),
        }
        if self.training:
            cv_loss = self._cv_loss(m) if c.uses_cv else m.new_zeros(())
            out["cv_loss"] = cv_loss
            out["aux_loss"] = c.kl_weight * out["kl"] + self._cv_weight * cv_loss
        return out

    def _cv_loss(self, m: torch.Tensor) -> torch.Tensor:
        """mean (CV − target)² over ``cv_matrices`` blocks drawn (global RNG) from m's B·N·K."""
        c = self.config
        blocks = m.reshape(-1, c.V, c.D)
        pick = torch.randint(blocks.shape[0], (min(c.cv_matrices, blocks.shape[0]),))
        cv = pentachoron_cv_batch(blocks[pick.to(m.device)], c.cv_samples)
        return (cv - c.cv_target).square().mean()

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) → the reconstruction from z = μ in eval mode, same shape."""
        return self(x)["recon"]

    def encode_rows(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) → (B, P, K·V, D) unit battery rows per patch (raster order)."""
        patches, _ = self._patches(x)
        c = self.config
        h = _residual(gelu(self.enc_in(patches)), self.enc_blocks)
        raw = self.enc_out(h).unflatten(-1, (c.n_blocks * c.V, c.D))
        return sphere_normalize(raw)

    def _patches(self, x: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """Check and cut x → (patches (B, N, C·ps²), patches ↦ images of x's size)."""
        c = self.config
        check_images(x, c.channels, c.patch_size)
        return cut_padded(x, c.patch_size)

    # -------------------------------------------------------------------------- monitors
    @torch.no_grad()
    def monitors(self, x: torch.Tensor) -> dict[str, Any]:
        """Per epoch, on validation images x: ``cv`` (mean pentachoron CV of up to 1,024 battery
        blocks, 64 draws each, seed 0) beside ``cv_target`` and the CV of V i.i.d. uniform rows
        in D (``cv_uniform``); ``kl``; the phase's ``cv_weight``."""
        c = self.config
        out = self(x)
        blocks = out["M"].reshape(-1, c.V, c.D)[:1024].double()
        gen = torch.Generator().manual_seed(0)
        cv = pentachoron_cv_batch(blocks, 64, generator=gen)
        return {
            "cv": cv.mean().item(),
            "cv_sd": cv.std().item() if len(cv) > 1 else 0.0,
            "cv_target": c.cv_target,
            "cv_uniform": cv_uniform(c.V, c.D),
            "kl": out["kl"].item(),
            "cv_weight": self._cv_weight,
        }
