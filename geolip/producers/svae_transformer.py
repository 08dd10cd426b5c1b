"""The SVAE-transformer: a small sphere-solver battery under an isometric lens, read top to bottom.

    inputs: image patches (B, N, C·ps²), raster order, or feature tokens (B, T, F)
      → battery: a linear-readout sphere-solver (V rows on S^(D−1) per token) that learns only
        from its own reconstruction of the tokens (internal MSE)              BATTERY
      → stem = M.detach(): the shell never moves the battery
      → lens: M_lens = M·Eᵀ, E (D_lens, D) fixed orthonormal columns (an isometry: every
        pairwise |cos| of the rows is kept), rows renormalised                 LENS
      → omega S = column norms of M_lens over the V rows, (B, N, D_lens)
      → spectral-alpha stack: n_layers × S ← S ⊙ (1 + α ⊙ tanh(out(SDPA(LN(S))))) across the
        N tokens, α = max_alpha·σ(logits) per mode, starting near identity    ATTENTION
      → geometric decoder: M_lens ⊙ S (broadcast over rows) → Linear → GELU → residual blocks
        → Linear → token (B, N, F) → stitch for images (external MSE)        SHELL

Battery and shell learn from separate losses (the stem is detached) and train in separate
optimiser groups (``battery_lr_scale``). The producer rows are the battery's M in D: the lens is
fixed and isometric, so its image in D_lens holds the same axes, only embedded in a larger
space where a uniform baseline would no longer apply.

Our reading of the upstream prototype (its code was summarised, not stored): the battery's
internal loss is per token (no boundary smoother), its cross-attention is the sphere-solver's,
the lens sign mode is "signed" (rows keep their sign), and image inputs are padded on the
bottom/right to a multiple of ps.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt, model_validator
from torch import nn
from torch.nn.functional import cosine_similarity, gelu, mse_loss

from geolip.producers.contract import Geometry, ProducerModule
from geolip.producers.patches import check_images, check_rows, cut_padded, stitch_patches
from geolip.producers.sphere_solver import (
    SpectralCrossAttention,
    SphereSolver,
    SphereSolverConfig,
    _residual,
    _residual_blocks,
)
from geolip.solvers.linalg import sphere_normalize
from geolip.solvers.projective import rigidity_deviation

RIGIDITY_ENVELOPE = 0.02
"""The upstream envelope: |rigidity deviation| < 0.02·√D counts as "in envelope"."""


class SVAETransformerConfig(BaseModel):
    """Every hyper-parameter of an SVAE-transformer; frozen, unknown fields refused.

    Attributes:
        inputs: ``image_patches`` (images (B, C, H, W) cut into ps × ps patches) or ``tokens``
            (sequences (B, T, F), also accepted as one-channel (B, 1, T, F)).
        channels, patch_size: C and ps of image inputs; token_dim: F of token inputs.
        V, D, hidden, depth, n_cross: the battery (a linear-readout sphere-solver).
        D_lens, lens_seed: the lens E (D_lens, D), orthonormal columns from a QR of a Gaussian
            drawn under ``lens_seed``.
        n_layers, n_heads, max_alpha, alpha_init_logit: the spectral-alpha stack on omega.
        shell_hidden, shell_depth: the geometric decoder.
        battery_lr_scale: the battery's learning rate is the run's lr times this.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    inputs: Literal["image_patches", "tokens"] = "image_patches"
    channels: PositiveInt = 3
    patch_size: PositiveInt = 2
    token_dim: PositiveInt = 384
    V: Annotated[int, Field(ge=2)] = 32
    D: Annotated[int, Field(ge=2)] = 4
    hidden: PositiveInt = 64
    depth: NonNegativeInt = 1
    n_cross: NonNegativeInt = 1
    D_lens: PositiveInt = 16
    lens_seed: int = 0
    n_layers: NonNegativeInt = 2
    n_heads: PositiveInt = 4
    max_alpha: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.2
    alpha_init_logit: Annotated[float, Field(allow_inf_nan=False)] = -2.0
    shell_hidden: PositiveInt = 128
    shell_depth: NonNegativeInt = 1
    battery_lr_scale: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 1.0

    @model_validator(mode="after")
    def _shapes_fit(self) -> SVAETransformerConfig:
        if self.D_lens < self.D:
            raise ValueError(
                f"D_lens={self.D_lens} must be >= D={self.D}: the lens lifts rows isometrically"
            )
        if self.n_layers and self.D_lens % self.n_heads:
            raise ValueError(f"n_heads={self.n_heads} must divide D_lens={self.D_lens}")
        return self

    def dataset_mismatch(self, channels: int, size: tuple[int, int]) -> str | None:
        """Why a dataset of ``channels``-channel items of ``size`` (H, W) cannot train this
        model, or ``None`` when it can (token inputs: one channel, width ``token_dim``)."""
        if self.inputs == "tokens":
            if channels != 1 or size[1] != self.token_dim:
                return (
                    f"its items are {channels} × {size[0]} × {size[1]}; token inputs need "
                    f"1 × T × {self.token_dim} (token_dim)"
                )
            return None
        if channels != self.channels:
            return f"its images have {channels} channels, the model takes {self.channels}"
        return None

    @property
    def token_size(self) -> int:
        """Floats per token: C·ps² for image patches, F for feature tokens."""
        return (
            self.channels * self.patch_size**2 if self.inputs == "image_patches" else self.token_dim
        )

    def battery_config(self) -> SphereSolverConfig:
        """The battery's sphere-solver config: a token of ``token_size`` floats is its patch."""
        patch = (
            {"channels": self.channels, "patch_size": self.patch_size}
            if self.inputs == "image_patches"
            else {"channels": self.token_dim, "patch_size": 1}
        )
        return SphereSolverConfig(
            V=self.V,
            D=self.D,
            hidden=self.hidden,
            depth=self.depth,
            n_cross=self.n_cross,
            readout="linear",
            **patch,
        )


def isometric_lens(d_lens: int, d: int, seed: int) -> torch.Tensor:
    """E (d_lens, d) with orthonormal columns: Q of the QR of a float64 Gaussian drawn under
    ``seed`` (the global RNG untouched), returned as float32. Eᵀ E = I, so x ↦ x Eᵀ keeps every
    inner product."""
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d_lens, d, generator=gen, dtype=torch.float64))
    return q.float()


class SVAETransformer(ProducerModule):
    """Battery → lens → omega → spectral-alpha stack → geometric decoder; see the module doc."""

    config_class = SVAETransformerConfig

    def __init__(self, config: SVAETransformerConfig, preset: str | None = None) -> None:
        super().__init__()
        self.config, self.preset = config, preset
        c = config
        self.battery = SphereSolver(c.battery_config())
        # the battery reads token vectors, never stitched images: no boundary smoother
        self.battery.boundary_smooth = nn.Identity()
        self.register_buffer("lens", isometric_lens(c.D_lens, c.D, c.lens_seed))
        self.alpha_stack = nn.ModuleList(
            SpectralCrossAttention(c.D_lens, c.n_heads, c.max_alpha, c.alpha_init_logit)
            for _ in range(c.n_layers)
        )
        self.dec_in = nn.Linear(c.V * c.D_lens, c.shell_hidden)
        self.dec_blocks = _residual_blocks(c.shell_hidden, c.shell_depth)
        self.dec_out = nn.Linear(c.shell_hidden, c.token_size)

    # ------------------------------------------------------------------------- identity
    @property
    def geometry(self) -> Geometry:
        """V battery rows on S^(D−1) per token: a ps × ps patch, or one feature token."""
        c = self.config
        if c.inputs == "tokens":
            return Geometry(
                D=c.D,
                rows_per_token=c.V,
                channels=1,
                patch_size=None,
                token_kind="tokens",
                token_dim=c.token_dim,
            )
        return Geometry(D=c.D, rows_per_token=c.V, channels=c.channels, patch_size=c.patch_size)

    def parameter_groups(self, lr: float) -> list[dict[str, Any]]:
        """Adam groups: the battery at ``lr·battery_lr_scale``, the shell at ``lr``."""
        shell = [p for name, p in self.named_parameters() if not name.startswith("battery.")]
        battery = list(self.battery.parameters())
        return [
            {"params": battery, "lr": lr * self.config.battery_lr_scale, "name": "battery"},
            {"params": shell, "lr": lr, "name": "shell"},
        ]

    def attention_alphas(self) -> list[torch.Tensor]:
        """α of the battery's cross-attention layers, (D,) each, then of the spectral-alpha
        stack, (D_lens,) each."""
        shell = [m.max_alpha * torch.sigmoid(m.alpha_logits.detach()) for m in self.alpha_stack]
        return self.battery.attention_alphas() + shell

    # --------------------------------------------------------------------------- forward
    def forward_patches(self, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        """The core path on token vectors (image patches or feature tokens alike).

        Args:
            tokens: (B, N, token_size); the N tokens attend to each other.

        Returns:
            ``tokens`` (B, N, token_size), the shell's reconstruction; ``battery_tokens``, the
            battery's own; the battery's M (B, N, V, D), S_orig and S (B, N, D); ``M_lens``
            (B, N, V, D_lens); ``omega`` (B, N, D_lens) and ``omega_attended`` after the stack.
        """
        c = self.config
        if tokens.ndim != 3 or tokens.shape[-1] != c.token_size:
            raise ValueError(
                f"expected tokens (B, N, {c.token_size}), got shape {tuple(tokens.shape)}"
            )
        battery = self.battery.solve_patches(tokens)
        shell = self._shell(battery["M"].detach())
        return {
            "tokens": shell["tokens"],
            "battery_tokens": battery["patches"],
            "M": battery["M"],
            "S_orig": battery["S_orig"],
            "S": battery["S"],
            **{k: shell[k] for k in ("M_lens", "omega", "omega_attended")},
        }

    def _shell(self, m: torch.Tensor) -> dict[str, torch.Tensor]:
        """Battery rows (B, N, V, D) → lens, omega, the stack and the decoder."""
        m_lens = sphere_normalize(m @ self.lens.T)  # (B, N, V, D_lens), already unit
        omega = m_lens.norm(dim=-2)  # (B, N, D_lens)
        s = omega
        for layer in self.alpha_stack:
            s = layer(s)  # across the N tokens
        h = gelu(self.dec_in((m_lens * s.unsqueeze(-2)).flatten(-2)))  # (B, N, shell_hidden)
        out = self.dec_out(_residual(h, self.dec_blocks))  # (B, N, token_size)
        return {"tokens": out, "M_lens": m_lens, "omega": omega, "omega_attended": s}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Whole pass on images (B, C, H, W) or token sequences (B, T, F) / (B, 1, T, F).

        Returns:
            ``recon`` of x's shape (images cropped back), ``aux_loss`` = the battery's internal
            MSE on the tokens (the trainer adds it to MSE(recon, x); it reaches only the
            battery, the shell's loss only the shell), and every output of
            :meth:`forward_patches` but the tokens.
        """
        tokens, rebuild = self._tokens(x)
        out = self.forward_patches(tokens)
        recon = rebuild(out.pop("tokens"))
        aux = mse_loss(out.pop("battery_tokens").float(), tokens.float())
        return {"recon": recon, "aux_loss": aux, **out}

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """``forward``'s recon: x's shape."""
        return self(x)["recon"]

    def encode_rows(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) → (B, P, V, D) battery rows per patch (raster order, padded up
        to multiples of ps); token sequences (B, T, F) or (B, 1, T, F) → (B, T, V, D). Unit
        rows."""
        tokens, _ = self._tokens(x)
        return self.battery.solve_patches(tokens)["M"]

    def decode_rows(self, m: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """Battery rows (B, P, V, D) of a gh × gw grid (P = gh·gw, raster order; renormalised)
        → the shell's images (B, C, gh·ps, gw·ps), or token sequences (B, 1, P, F)."""
        c = self.config
        gh, gw = grid
        check_rows(m, grid, c.V, c.D)
        tokens = self._shell(sphere_normalize(m))["tokens"]
        if c.inputs == "tokens":
            return tokens.unsqueeze(1)
        ps = c.patch_size
        return stitch_patches(tokens, c.channels, gh * ps, gw * ps, ps)

    def _tokens(self, x: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """Check x and cut it into tokens (B, N, token_size); returns them and the function
        that puts (B, N, token_size) back into x's shape."""
        c = self.config
        if not x.is_floating_point():
            raise ValueError(f"expected floating-point inputs, got dtype {x.dtype}")
        if c.inputs == "tokens":
            squeeze = x.ndim == 4 and x.shape[1] == 1
            seq = x[:, 0] if squeeze else x
            if seq.ndim != 3 or seq.shape[-1] != c.token_dim:
                raise ValueError(
                    f"expected token sequences (B, T, {c.token_dim}) or (B, 1, T, "
                    f"{c.token_dim}), got shape {tuple(x.shape)}"
                )
            return seq, (lambda t: t.unsqueeze(1)) if squeeze else (lambda t: t)
        check_images(x, c.channels, c.patch_size)
        return cut_padded(x, c.patch_size)

    # -------------------------------------------------------------------------- monitors
    @torch.no_grad()
    def monitors(self, x: torch.Tensor) -> dict[str, Any]:
        """What the trainer logs each epoch beside the reconstruction, on validation inputs x.

        ``recon_cos`` / ``battery_cos``: mean cosine between each token and the shell's
        (battery's) reconstruction of it; ``rigidity_deviation``: the mean over tokens of the
        battery rows' mean projective angle minus the uniform baseline of D, beside the same
        statistic of V i.i.d. uniform rows (``rigidity_null_mean`` / ``_sd`` per matrix over as
        many matrices, seed 0), the z-score of the observed mean in that null
        (``rigidity_z``, sd/√n) and the upstream envelope 0.02·√D; ``alpha``: every α vector of
        :meth:`attention_alphas`, in its order.
        """
        tokens, _ = self._tokens(x)
        out = self.forward_patches(tokens)
        m = out["M"].flatten(0, 1)  # (B·N, V, D)
        dev = rigidity_deviation(m)
        gen = torch.Generator().manual_seed(0)
        null = rigidity_deviation(torch.randn(m.shape, generator=gen, dtype=torch.float64))
        return {
            "recon_cos": cosine_similarity(out["tokens"], tokens, dim=-1).mean().item(),
            "battery_cos": cosine_similarity(out["battery_tokens"], tokens, dim=-1).mean().item(),
            "battery_mse": mse_loss(out["battery_tokens"], tokens).item(),
            "rigidity_deviation": dev.mean().item(),
            "rigidity_null_mean": null.mean().item(),
            "rigidity_null_sd": null.std().item(),
            "rigidity_z": ((dev.mean() - null.mean()) / (null.std() / len(dev) ** 0.5)).item(),
            "rigidity_envelope": RIGIDITY_ENVELOPE * self.config.D**0.5,
            "alpha": [a.tolist() for a in self.attention_alphas()],
        }
