"""The sphere-solver (upstream PatchSVAE, spec §A.1–A.6, A.8, A.9, A.18), read top to bottom.

    image (B, C, H, W)
      → patches (B, N, C·ps²), raster order                          patches.py
      → residual-MLP encoder → M_raw (B, N, V, D)
      → sphere normalisation: every row of M on S^(D−1)              ← the producer contract
      → spectral split (U, S, Vt): thin SVD, or the H2 linear readout
      → spectral cross-attention across patches: S' = S ⊙ (1 + α ⊙ g)
      → recompose M̂ = U diag(S') Vt
      → residual-MLP decoder → patches → stitch → 3×3 boundary smoother → recon

Module names equal upstream's so its state dicts load unchanged (see upstream.py). Any input
size works: images are reflect-padded on the bottom/right to a multiple of ps and the recon is
cropped back. Despite the upstream name there is nothing variational: no sampling, no KL term.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt, model_validator
from torch import nn
from torch.nn.functional import gelu, scaled_dot_product_attention

from geolip.errors import CheckpointError
from geolip.producers.contract import Geometry, ProducerModule
from geolip.producers.patches import (
    assemble_tiles,
    check_images,
    check_rows,
    crop,
    extract_patches,
    pad_to_multiple,
    split_tiles,
    stitch_patches,
    tile_grid,
)
from geolip.producers.pretrained import CONFIG_FILE, load_weights, parse_config, read_pretrained
from geolip.solvers.linalg import SVDMethod, gram_svd, sphere_normalize


class SphereSolverConfig(BaseModel):
    """Every hyper-parameter of a sphere-solver; frozen, unknown fields refused.

    Attributes:
        V, D: each patch is encoded as a V × D matrix whose V rows lie on S^(D−1).
        patch_size: ps, the patch side in pixels; channels: C, image channels.
        hidden, depth: width and number of residual blocks of both encoder and decoder.
        n_cross: spectral cross-attention layers; n_heads: their heads (None → 2 if D ≤ 8 else
            min(4, D), upstream's rule); must divide D when attention is built.
        smooth_mid: hidden channels of the boundary smoother (None → 16 if ps ≥ 16 else 8).
        max_alpha, alpha_init_logit: α = max_alpha·σ(alpha_logits), logits start at the init.
        readout: how M reaches the decoder.
            "svd": thin SVD of M, cross-attention on S, M̂ = U diag(S') Vt (upstream default).
            "linear": H2_linear_matched (§A.8): U := Linear(V·D → V·D)(M), S := column norms
                of U, Vt := I, so the decoder reads U diag(S'), each column of the readout
                scaled by its own norm (times 1 + α g). Reproduced exactly, odd as it is.
            "bypass": the §A.18 control: the decoder reads M itself and no cross-attention is
                built (n_cross is then ignored and not counted in the parameters).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    V: PositiveInt
    D: PositiveInt
    patch_size: PositiveInt
    channels: PositiveInt = 3
    hidden: PositiveInt
    depth: NonNegativeInt
    n_cross: NonNegativeInt
    n_heads: PositiveInt | None = None
    smooth_mid: PositiveInt | None = None
    max_alpha: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.2
    alpha_init_logit: Annotated[float, Field(allow_inf_nan=False)] = -2.0
    readout: Literal["svd", "linear", "bypass"] = "svd"

    @property
    def heads(self) -> int:
        """Attention heads after applying the default rule."""
        if self.n_heads is not None:
            return self.n_heads
        return 2 if self.D <= 8 else min(4, self.D)

    @property
    def mid(self) -> int:
        """Boundary-smoother hidden channels after applying the default rule."""
        if self.smooth_mid is not None:
            return self.smooth_mid
        return 16 if self.patch_size >= 16 else 8

    @property
    def attention_layers(self) -> int:
        """Cross-attention layers actually built: none in the bypass control."""
        return 0 if self.readout == "bypass" else self.n_cross

    @model_validator(mode="after")
    def _heads_divide_d(self) -> SphereSolverConfig:
        if self.attention_layers and self.D % self.heads:
            raise ValueError(f"n_heads={self.heads} must divide D={self.D}")
        return self


class SpectralCrossAttention(nn.Module):
    """Bounded multiplicative coordination of singular values across patches (spec §A.4).

    S' = S ⊙ (1 + α ⊙ tanh(out_proj(attn(LN(S))))) with α = max_alpha·σ(alpha_logits) per mode
    and attn plain multi-head softmax attention over the N patches: no mask, no positions, so
    the layer is permutation-equivariant over patches. 4D² + 7D parameters.
    """

    def __init__(self, D: int, n_heads: int, max_alpha: float, alpha_init_logit: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.max_alpha = max_alpha
        self.qkv = nn.Linear(D, 3 * D)
        self.out_proj = nn.Linear(D, D)
        self.norm = nn.LayerNorm(D)
        self.alpha_logits = nn.Parameter(torch.full((D,), alpha_init_logit))

    def forward(self, S: torch.Tensor) -> torch.Tensor:
        """(B, N, D) singular values → (B, N, D) coordinated values."""
        B, N, D = S.shape
        qkv = self.qkv(self.norm(S)).reshape(B, N, 3, self.n_heads, D // self.n_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, heads, N, D/heads)
        o = scaled_dot_product_attention(q, k, v)  # softmax(q kᵀ / √(D/heads)) v
        g = torch.tanh(self.out_proj(o.transpose(1, 2).reshape(B, N, D)))  # (B, N, D)
        alpha = self.max_alpha * torch.sigmoid(self.alpha_logits)  # (D,)
        return S * (1 + alpha * g)


class BoundarySmooth(nn.Module):
    """y = x + Conv3×3(GELU(Conv3×3(x))) on stitched images; identity at init (last conv zero)."""

    def __init__(self, channels: int, mid: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, mid, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(mid, channels, 3, padding=1),
        )
        nn.init.zeros_(self.net[2].weight)
        nn.init.zeros_(self.net[2].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) → (B, C, H, W)."""
        return x + self.net(x)


class SphereSolver(ProducerModule):
    """Patch encoder onto the sphere, spectral coordination, patch decoder (upstream PatchSVAE).

    ``encode_rows`` is the producer contract every downstream piece reads; ``forward`` runs the
    whole autoencoder. Both accept ``tile_patches`` to process the patch grid in square tiles
    of that many patches per side, re-assembled in raster order: memory is then bounded by a
    tile. M is per patch, so tiling does not change it; cross-attention, however, then only
    sees the patches of one tile, so with cross-attention on, the tiled S, M̂ and recon differ
    from the direct ones. With n_cross = 0 or readout = "bypass" every output agrees with the
    direct pass up to rounding: a BLAS matrix product may round a row differently depending on
    how many rows it is given (≈ 1e-15 relative in float64).
    """

    def __init__(self, config: SphereSolverConfig, preset: str | None = None) -> None:
        super().__init__()
        self.config = config
        self.preset = preset  # name of the preset it was built from, if any (metadata only)
        # how the SVD is computed (gram_svd's method); the same function either way, so it is
        # not part of the config
        self.svd_method: SVDMethod = "auto"
        c = config
        P, L = c.channels * c.patch_size**2, c.V * c.D  # patch floats, matrix floats

        self.enc_in = nn.Linear(P, c.hidden)
        self.enc_blocks = _residual_blocks(c.hidden, c.depth)
        self.enc_out = nn.Linear(c.hidden, L)
        nn.init.orthogonal_(self.enc_out.weight)  # load-bearing upstream (§A.2)
        if c.readout == "linear":
            self.readout = nn.Linear(L, L)
        self.cross_attn = nn.ModuleList(
            SpectralCrossAttention(c.D, c.heads, c.max_alpha, c.alpha_init_logit)
            for _ in range(c.attention_layers)
        )
        self.dec_in = nn.Linear(L, c.hidden)
        self.dec_blocks = _residual_blocks(c.hidden, c.depth)
        self.dec_out = nn.Linear(c.hidden, P)
        self.boundary_smooth = BoundarySmooth(c.channels, c.mid)

    def pretrained_config(self) -> dict[str, Any]:
        """``config.json`` of a pretrained folder, with a training checkpoint's keys."""
        model = self.config.model_dump(mode="json")
        return {"model_class": type(self).__name__, "model": model, "preset": self.preset}

    @classmethod
    def from_folder(cls, folder: str | Path) -> SphereSolver:
        """A pretrained folder or a training checkpoint (``config.json`` with ``model`` and
        ``preset``, ``model.safetensors``), in eval mode; a folder that names no
        ``model_class`` is read as a SphereSolver's (checkpoints of geolip ≤ 0.1).

        Raises:
            CheckpointNotFoundError, CheckpointError: naming the file and the problem.
        """
        doc, state = read_pretrained(folder, cls.__name__, default_class=cls.__name__)
        if not isinstance(doc.get("model"), dict):
            raise CheckpointError("no 'model' config object", Path(folder) / CONFIG_FILE)
        config = parse_config(SphereSolverConfig, doc["model"], folder)
        return load_weights(cls(config, preset=doc.get("preset")), state, folder)

    @property
    def geometry(self) -> Geometry:
        """V rows on S^(D−1) per ps × ps patch of a C-channel image."""
        c = self.config
        return Geometry(D=c.D, rows_per_token=c.V, channels=c.channels, patch_size=c.patch_size)

    def reconstruct(self, x: torch.Tensor, tile_patches: int | None = None) -> torch.Tensor:
        """(B, C, H, W) → the autoencoder's reconstruction, same shape (``forward``'s recon).

        Only the decoded patches of each tile are kept (not M, U, S, Vt), so with
        ``tile_patches`` the memory is one tile's work plus the image: a 4096² image at tiles
        of 128 patches needs far less than ``forward`` would hold.
        """
        return self._autoencode(x, tile_patches, keep=("patches",))["recon"]

    def decode_rows(self, m: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """Rows → images: the decoder half of ``forward``, on rows given from outside.

        Args:
            m: (B, P, V, D) rows of a gh × gw patch grid in raster order, P = gh·gw; they are
                sphere-normalised first, as the encoder's own rows are (so any non-zero rows).
            grid: (gh, gw).

        Returns:
            (B, C, gh·ps, gw·ps): spectral split, cross-attention across all P patches, decoder,
            stitch, boundary smoother. For x whose sides are multiples of ps,
            ``decode_rows(encode_rows(x), grid)`` is ``forward(x)["recon"]`` up to rounding.
        """
        c = self.config
        gh, gw = grid
        check_rows(m, grid, c.V, c.D)
        patches = self._solve_rows(sphere_normalize(m))["patches"]
        ps = c.patch_size
        return self.boundary_smooth(stitch_patches(patches, c.channels, gh * ps, gw * ps, ps))

    def attention_alphas(self) -> list[torch.Tensor]:
        """α = max_alpha·σ(alpha_logits) of each cross-attention layer, (D,) each."""
        return [m.max_alpha * torch.sigmoid(m.alpha_logits.detach()) for m in self.cross_attn]

    def param_count(self) -> int:
        """Number of trainable scalars (matches the §A.9 formula)."""
        return sum(p.numel() for p in self.parameters())

    def encode_rows(self, x: torch.Tensor, tile_patches: int | None = None) -> torch.Tensor:
        """Images → per-patch unit rows: the producer contract.

        Args:
            x: (B, C, H, W) finite images of any size ≥ ps × ps; H, W that are not multiples
                of ps are reflect-padded on the bottom/right first.
            tile_patches: encode tile by tile (bounded memory); the result is the same up to
                rounding.

        Returns:
            M: (B, P, V, D), P = ⌈H/ps⌉·⌈W/ps⌉ patches of the padded grid in raster order,
            every row of unit norm.
        """
        patches, grid, _ = self._patchify(x)
        return _tiled(lambda p: {"M": self._encode(p)}, patches, grid, tile_patches)["M"]

    def forward(self, x: torch.Tensor, tile_patches: int | None = None) -> dict[str, torch.Tensor]:
        """Full autoencoder pass.

        Args:
            x: (B, C, H, W) finite images of any size ≥ ps × ps (see ``encode_rows``).
            tile_patches: process square tiles of this many patches per side; cross-attention
                then only sees the patches of one tile.

        Returns:
            recon (B, C, H, W) cropped back to the input size; per patch of the padded grid,
            raster order: M (B, P, V, D) unit rows, U (B, P, V, D), S_orig (B, P, D) before and
            S (B, P, D) after cross-attention, Vt (B, P, D, D). "linear": U is the readout
            (not orthonormal), S_orig its column norms, Vt = I. "bypass": U, S_orig, Vt are the
            SVD of M, reported only (the decoder reads M), and S = S_orig.
        """
        return self._autoencode(x, tile_patches)

    def _autoencode(
        self, x: torch.Tensor, tile_patches: int | None, keep: tuple[str, ...] | None = None
    ) -> dict[str, torch.Tensor]:
        """``forward``, keeping only the per-patch outputs named in ``keep`` (all if None)."""
        c = self.config
        patches, (gh, gw), size = self._patchify(x)  # (B, P, C·ps²)

        def solve(p: torch.Tensor) -> dict[str, torch.Tensor]:
            out = self._solve(p)
            return out if keep is None else {k: out[k] for k in keep}

        out = _tiled(solve, patches, (gh, gw), tile_patches)
        ps = c.patch_size
        image = stitch_patches(out.pop("patches"), c.channels, gh * ps, gw * ps, ps)
        recon = crop(self.boundary_smooth(image), size)  # (B, C, H, W)
        return {"recon": recon, **out}

    def _patchify(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int], tuple[int, int]]:
        """Check, pad and cut: → (patches (B, P, C·ps²), grid (gh, gw), input size (H, W))."""
        check_images(x, self.config.channels, self.config.patch_size)
        ps = self.config.patch_size
        padded, size = pad_to_multiple(x, ps)
        grid = (padded.shape[-2] // ps, padded.shape[-1] // ps)
        return extract_patches(padded, ps), grid, size

    def solve_patches(self, patches: torch.Tensor) -> dict[str, torch.Tensor]:
        """Patch vectors (B, n, C·ps²) that attend to each other → M (B, n, V, D), U, S_orig,
        S, Vt and the decoded patches (B, n, C·ps²): ``forward`` without cutting, stitching
        or smoothing, for models that feed a sphere-solver vectors of their own."""
        return self._solve(patches)

    def _solve(self, patches: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, n, C·ps²) patches that attend to each other → M, U, S_orig, S, Vt, patches."""
        return self._solve_rows(self._encode(patches))

    def _solve_rows(self, M: torch.Tensor) -> dict[str, torch.Tensor]:
        """M (B, n, V, D) unit rows of patches that attend to each other → M, U, S_orig, S,
        Vt, decoded patches (B, n, C·ps²)."""
        U, S_orig, Vt = self._spectral(M)  # (B, n, V, D), (B, n, D), (B, n, D, D)
        S = S_orig
        for layer in self.cross_attn:
            S = layer(S)  # attention across the n patches
        if self.config.readout == "bypass":
            M_hat = M
        elif self.config.readout == "linear":  # Vt = I: U diag(S) without the product
            M_hat = U * S.unsqueeze(-2)
        else:
            M_hat = (U * S.unsqueeze(-2)) @ Vt
        return {"M": M, "U": U, "S_orig": S_orig, "S": S, "Vt": Vt, "patches": self._decode(M_hat)}

    def _encode(self, patches: torch.Tensor) -> torch.Tensor:
        """(B, n, C·ps²) → M (B, n, V, D) with unit rows."""
        c = self.config
        h = gelu(self.enc_in(patches))  # (B, n, hidden)
        h = _residual(h, self.enc_blocks)
        M = self.enc_out(h).unflatten(-1, (c.V, c.D))  # (B, n, V, D)
        return sphere_normalize(M)

    def _spectral(self, M: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """M (B, n, V, D) → U (B, n, V, D), S (B, n, D), Vt (B, n, D, D) with U diag(S) Vt = M
        for the SVD; for the linear readout U := readout(M), S := its column norms, Vt := I."""
        if self.config.readout != "linear":
            return gram_svd(M, method=self.svd_method)
        D = self.config.D
        U = self.readout(M.flatten(-2)).unflatten(-1, M.shape[-2:])  # (B, n, V, D)
        S = U.norm(dim=-2)  # (B, n, D)
        Vt = torch.eye(D, dtype=M.dtype, device=M.device).expand(*S.shape, D)
        return U, S, Vt

    def _decode(self, M_hat: torch.Tensor) -> torch.Tensor:
        """M̂ (B, n, V, D) → patches (B, n, C·ps²)."""
        h = gelu(self.dec_in(M_hat.flatten(-2)))  # (B, n, hidden)
        return self.dec_out(_residual(h, self.dec_blocks))


def _residual_blocks(hidden: int, depth: int) -> nn.ModuleList:
    """``depth`` pre-LN MLP blocks LN → Linear → GELU → Linear, each applied as h + block(h)."""
    return nn.ModuleList(
        nn.Sequential(
            nn.LayerNorm(hidden), nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, hidden)
        )
        for _ in range(depth)
    )


def _residual(h: torch.Tensor, blocks: nn.ModuleList) -> torch.Tensor:
    for block in blocks:
        h = h + block(h)
    return h


def _tiled(
    fn: Callable[[torch.Tensor], dict[str, torch.Tensor]],
    patches: torch.Tensor,
    grid: tuple[int, int],
    tile_patches: int | None,
) -> dict[str, torch.Tensor]:
    """fn on all (B, P, ...) patches at once, or on each tile with raster re-assembly of every
    (B, n_t, ...) output."""
    if tile_patches is None:
        return fn(patches)
    tiles = tile_grid(*grid, tile_patches)
    outs = [fn(rows) for rows in split_tiles(patches, tiles, *grid)]
    return {key: assemble_tiles([o[key] for o in outs], tiles, *grid) for key in outs[0]}
