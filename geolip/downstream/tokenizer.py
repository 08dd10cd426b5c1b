"""An image tokenizer over a frozen producer and codebook, in the Hugging Face tokenizer shape.

    image (C, H, W) → producer.encode_rows → M (P, V, D) unit rows, P = gh·gw patches
      → per row: the top-k axes by |cos| and the sign of each cos
      → ids: axis i with sign + is 2i, with sign − is 2i + 1        (0 … 2K − 1)
      → <image_start> (<row_start> [P-row of gw patches: gw·V·k ids])×gh <image_end>

Every row of every patch is coded: a patch costs V·k tokens, an image 2 + gh + gh·gw·V·k.
Decoding reverses it: each row is rebuilt as normalize(Σ_j s_j w[v, j] a_{i_j}) from its k
(axis, sign) tokens, and the rows go through the producer's decoder (``decode_rows``). No
magnitude is stored or needed: the producer's rows are unit by contract and its decoder reads
only their directions. The weights w (V, k) mix the k axes of a row: a V × k least-squares head
fitted on a calibration set (:meth:`GeolipImageTokenizer.calibrated`), all 1 until then (with
k = 1 they do not matter).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch.nn.functional import interpolate

from geolip.codebook import Codebook
from geolip.downstream.tokenizer_io import TokenizerParts, read_tokenizer, write_tokenizer
from geolip.errors import IncompatibleInputError
from geolip.producers.contract import Producer, Reconstructor, require_reconstructor
from geolip.solvers.linalg import sphere_normalize

SPECIAL_TOKENS = ("<image_start>", "<image_end>", "<row_start>", "<pad>")
"""Special tokens, in id order after the 2K axis tokens."""

Images = torch.Tensor | Sequence[torch.Tensor]

CALIBRATION_BATCH = 64
"""Images encoded at once by :meth:`GeolipImageTokenizer.calibrated`."""
FIT_PATCHES = 8192
"""Patches (of V rows each) the rank weights are fitted on, at most."""
FIT_STEPS = 200
FIT_LR = 0.05


class GeolipImageTokenizer:
    """Images ↔ axis-token sequences through a frozen producer and codebook (module docstring).

    Args:
        producer: an ``image_patches`` producer with a decode path
            (:class:`~geolip.producers.contract.Reconstructor`).
        codebook: K axes in the producer's R^D.
        top_k: axes per row, 1 ≤ top_k ≤ K.
        rank_weights: (V, top_k) positive mixing weights (module docstring); all ones if None.

    Raises:
        IncompatibleInputError: a producer without patches, a codebook of another D, a top_k
            out of range or rank weights of the wrong shape, before any work.
        TypeError: a producer without a decode path.
    """

    def __init__(
        self,
        producer: Producer,
        codebook: Codebook,
        top_k: int = 1,
        *,
        rank_weights: torch.Tensor | None = None,
    ) -> None:
        g = producer.geometry
        if g.token_kind != "image_patches" or g.patch_size is None:
            raise IncompatibleInputError("the image tokenizer needs a producer of image patches")
        self._decoder: Reconstructor = require_reconstructor(producer, "the image tokenizer")
        if codebook.dim != g.D:
            raise IncompatibleInputError(
                f"codebook {codebook.name!r} has D={codebook.dim}, the producer emits rows of "
                f"D={g.D}"
            )
        if not 1 <= top_k <= codebook.size:
            raise IncompatibleInputError(f"top_k must be in [1, K={codebook.size}], got {top_k}")
        weights = torch.ones(g.rows_per_token, top_k) if rank_weights is None else rank_weights
        weights = torch.as_tensor(weights).detach().cpu().float()
        if weights.shape != (g.rows_per_token, top_k) or not bool((weights > 0).all()):
            raise IncompatibleInputError(
                f"rank_weights must be positive, shape ({g.rows_per_token}, {top_k}), got "
                f"{tuple(weights.shape)}"
            )
        self.producer = producer
        self.codebook = codebook
        self.top_k = top_k
        self.rank_weights = weights

    # vocabulary ---------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        """2K axis tokens (each axis with either sign) and the 4 special tokens."""
        return 2 * self.codebook.size + len(SPECIAL_TOKENS)

    def __len__(self) -> int:
        return self.vocab_size

    @property
    def image_start_token_id(self) -> int:
        return 2 * self.codebook.size

    @property
    def image_end_token_id(self) -> int:
        return 2 * self.codebook.size + 1

    @property
    def row_start_token_id(self) -> int:
        return 2 * self.codebook.size + 2

    @property
    def pad_token_id(self) -> int:
        return 2 * self.codebook.size + 3

    @property
    def all_special_ids(self) -> list[int]:
        return [self.image_start_token_id + i for i in range(len(SPECIAL_TOKENS))]

    def convert_ids_to_tokens(self, ids: Sequence[int] | torch.Tensor) -> list[str]:
        """``<axis_I+>`` / ``<axis_I->`` for axis tokens, the special tokens by name."""
        out = []
        for token in torch.as_tensor(ids).flatten().tolist():
            self._check_ids(torch.tensor([token]))
            if token >= self.image_start_token_id:
                out.append(SPECIAL_TOKENS[token - self.image_start_token_id])
            else:
                out.append(f"<axis_{token // 2}{'-' if token % 2 else '+'}>")
        return out

    def get_vocab(self) -> dict[str, int]:
        """Token string → id, every id once."""
        ids = list(range(self.vocab_size))
        return dict(zip(self.convert_ids_to_tokens(ids), ids, strict=True))

    def tokens_per_image(self, size: tuple[int, int]) -> int:
        """Sequence length of an (H, W) image: 2 + gh + gh·gw·V·k, gh·gw its patch grid."""
        gh, gw = self.grid(size)
        return 2 + gh + gh * gw * self._per_patch

    # encoding -----------------------------------------------------------------------------
    def encode(self, image: torch.Tensor) -> list[int]:
        """One image (C, H, W) → its token ids (module docstring for the layout)."""
        if image.ndim != 3:
            shape = tuple(image.shape)
            raise IncompatibleInputError(f"encode takes one image (C, H, W), got {shape}")
        return self._encode_batch(image.unsqueeze(0))[0].tolist()

    def __call__(self, images: Images, return_tensors: str | None = None) -> dict[str, Any]:
        """Images → ``{"input_ids", "attention_mask"}``, as a Hugging Face tokenizer returns.

        Args:
            images: (B, C, H, W), one image (C, H, W), or a list of (C, H, W) of any sizes.
            return_tensors: ``"pt"``: int64 tensors (B, L), shorter sequences right-padded
                with ``pad_token_id`` (mask 0); ``None``: lists of lists, unpadded.
        """
        if return_tensors not in (None, "pt"):
            raise ValueError(f"return_tensors must be None or 'pt', got {return_tensors!r}")
        batch = [images] if isinstance(images, torch.Tensor) and images.ndim == 3 else images
        if isinstance(batch, torch.Tensor):
            self.check_images(batch)
            seqs = list(self._encode_batch(batch))
        else:
            for image in batch:
                if image.ndim != 3:
                    raise IncompatibleInputError(
                        f"a list of images holds (C, H, W) tensors, got {tuple(image.shape)}"
                    )
                self.check_images(image.unsqueeze(0))
            seqs = [self._encode_batch(image.unsqueeze(0))[0] for image in batch]
        if return_tensors is None:
            return {
                "input_ids": [s.tolist() for s in seqs],
                "attention_mask": [[1] * len(s) for s in seqs],
            }
        length = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), length), self.pad_token_id, dtype=torch.int64)
        mask = torch.zeros(len(seqs), length, dtype=torch.int64)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = s
            mask[i, : len(s)] = 1
        return {"input_ids": ids, "attention_mask": mask}

    def axis_ids(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) → axis-token ids (B, P, V, k) int64: 2i + 1 for axis i with a
        negative cos, 2i otherwise (:meth:`axis_codes` as ids)."""
        idx, signs = self.axis_codes(images)
        return 2 * idx + (signs < 0)

    def sequences(self, ids: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """Axis-token ids (B, P, V, k) or (B, P·V·k) of a gh × gw grid → full sequences
        (B, L) int64 with the structural tokens placed (module docstring for the layout)."""
        b = ids.shape[0]
        gh, gw = grid
        if ids.numel() != b * gh * gw * self._per_patch:
            raise IncompatibleInputError(
                f"{tuple(ids.shape)} ids do not fill a {gh}×{gw} grid of "
                f"{self._per_patch} tokens per patch"
            )
        self._check_ids(ids.flatten())
        if bool((ids >= self.image_start_token_id).any()):
            raise IncompatibleInputError("axis-token ids must be below 2K")
        rows = ids.reshape(b, gh, gw * self._per_patch).to(torch.int64)
        marks = torch.full((b, gh, 1), self.row_start_token_id, dtype=torch.int64)
        body = torch.cat([marks, rows], dim=2).reshape(b, -1)
        start = torch.full((b, 1), self.image_start_token_id, dtype=torch.int64)
        end = torch.full((b, 1), self.image_end_token_id, dtype=torch.int64)
        return torch.cat([start, body, end], dim=1)

    def axis_codes(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (B, C, H, W) → (axis indices (B, P, V, k) int64, signs (B, P, V, k) ±1),
        the top-k axes of every row by |cos| and the sign of each cos (+1 for cos = 0)."""
        self.check_images(images)
        with self.producer.frozen():
            rows = self.producer.encode_rows(images.to(self.producer.device)).float()
        cos = self.codebook.activations(rows, signed=True)  # (B, P, V, K)
        top = cos.abs().topk(self.top_k, dim=-1).indices
        signs = torch.where(cos.gather(-1, top) < 0, -1, 1)
        return top.cpu(), signs.cpu()

    def calibrated(self, images: torch.Tensor, steps: int = FIT_STEPS) -> GeolipImageTokenizer:
        """A tokenizer whose rank weights w (V, k) are fitted to ``images`` (B, C, H, W).

        w minimises the mean ‖normalize(Σ_j s_j w[v, j] a_{i_j}) − r‖² over the rows r of the
        images (at most :data:`FIT_PATCHES` patches, a seeded sample): a V × k least-squares
        head, ``steps`` full-batch Adam steps on log w from w = 1. Deterministic; with k = 1
        the weights cannot matter and stay 1.
        """
        self.check_images(images)
        v, k = self.producer.geometry.rows_per_token, self.top_k
        if k == 1:
            return self
        rows, axes = [], []
        with self.producer.frozen():
            for chunk in images.split(CALIBRATION_BATCH):
                r = self.producer.encode_rows(chunk.to(self.producer.device)).float().cpu()
                r = r.reshape(-1, v, r.shape[-1])  # (patches, V, D)
                cos = self.codebook.activations(r, signed=True)
                top = cos.abs().topk(k, dim=-1).indices
                sign = torch.where(cos.gather(-1, top) < 0, -1.0, 1.0)
                rows.append(r)
                axes.append(sign.unsqueeze(-1) * self.codebook.axes[top])  # (patches, V, k, D)
        r_all, a_all = torch.cat(rows), torch.cat(axes)
        if r_all.shape[0] > FIT_PATCHES:
            gen = torch.Generator().manual_seed(0)
            pick = torch.randperm(r_all.shape[0], generator=gen)[:FIT_PATCHES]
            r_all, a_all = r_all[pick], a_all[pick]
        log_w = torch.zeros(v, k, requires_grad=True)
        optimizer = torch.optim.Adam([log_w], lr=FIT_LR)
        with torch.enable_grad():
            for _ in range(steps):
                rebuilt = (log_w.exp().unsqueeze(-1) * a_all).sum(dim=-2)  # (patches, V, D)
                loss = (sphere_normalize(rebuilt) - r_all).square().sum(-1).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        weights = log_w.detach().exp()
        return GeolipImageTokenizer(self.producer, self.codebook, k, rank_weights=weights)

    # decoding -----------------------------------------------------------------------------
    def decode(
        self, tokens: Sequence[int] | torch.Tensor, target_size: tuple[int, int] | None = None
    ) -> torch.Tensor:
        """Token ids of one image → the image (C, H, W) through the producer's decoder.

        Args:
            tokens: one sequence as :meth:`encode` makes it; trailing ``<pad>`` ids are ignored.
            target_size: (H, W). None: the decoded grid, gh·ps × gw·ps. A size with the same
                patch grid (⌈H/ps⌉, ⌈W/ps⌉) = (gh, gw) crops the padding ``encode_rows`` added;
                any other size resizes the decoded image bilinearly (anti-aliased when
                shrinking): the tokens carry gh·gw patches, not more.

        Raises:
            IncompatibleInputError: an id outside the vocabulary or a malformed sequence,
                before the decoder runs.
        """
        return self.batch_decode([tokens], target_size)[0]

    def batch_decode(
        self,
        sequences: Sequence[Sequence[int]] | torch.Tensor,
        target_size: tuple[int, int] | None = None,
    ) -> list[torch.Tensor]:
        """Several sequences (a list, or (B, L) padded ids) → a list of images (C, H, W)."""
        parsed = [self._parse(torch.as_tensor(s, dtype=torch.int64).flatten()) for s in sequences]
        out: list[torch.Tensor] = []
        for grid in dict.fromkeys(g for _, _, g in parsed):  # one decoder call per grid
            members = [i for i, p in enumerate(parsed) if p[2] == grid]
            idx = torch.stack([parsed[i][0] for i in members])
            signs = torch.stack([parsed[i][1] for i in members])
            images = self.decode_codes(idx, signs, grid, target_size)
            out.extend(zip(members, images, strict=True))  # type: ignore[arg-type]
        return [image for _, image in sorted(out, key=lambda pair: pair[0])]  # type: ignore

    def decode_codes(
        self,
        indices: torch.Tensor,
        signs: torch.Tensor,
        grid: tuple[int, int],
        target_size: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """Axis codes (B, P, V, k) with signs → images (B, C, H, W) (see :meth:`decode`)."""
        axes = self.codebook.axes.to(self.producer.device)
        w = self.rank_weights.to(self.producer.device)
        signed = signs.to(self.producer.device, torch.float32) * w  # (B, P, V, k)
        rows = sphere_normalize((signed.unsqueeze(-1) * axes[indices.to(axes.device)]).sum(-2))
        with self.producer.frozen():
            images = self._decoder.decode_rows(rows, grid).cpu()
        return self._fit(images, grid, target_size)

    # files --------------------------------------------------------------------------------
    def save_pretrained(self, save_directory: str | Path) -> Path:
        """Write one self-contained folder (producer, codebook, settings; safetensors and
        JSON, :mod:`geolip.downstream.tokenizer_io`) atomically, read back before it replaces
        anything. Returns the folder."""
        return write_tokenizer(save_directory, self.parts(), self.describe())

    def parts(self) -> TokenizerParts:
        """Producer, codebook, top_k and rank weights: what a saved folder holds."""
        return TokenizerParts(self.producer, self.codebook, self.top_k, self.rank_weights)

    def describe(self) -> dict[str, Any]:
        """What the tokenizer reports about itself in ``tokenizer_config.json``."""
        g = self.producer.geometry
        return {
            "vocab_size": self.vocab_size,
            "special_tokens": dict(zip(SPECIAL_TOKENS, self.all_special_ids, strict=True)),
            "rows_per_patch": g.rows_per_token,
            "patch_size": g.patch_size,
            "channels": g.channels,
            "tokens_per_patch": self._per_patch,
        }

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> GeolipImageTokenizer:
        """Read a folder written by :meth:`save_pretrained`, every part verified."""
        parts = read_tokenizer(folder)
        return cls(parts.producer, parts.codebook, parts.top_k, rank_weights=parts.rank_weights)

    # internals ----------------------------------------------------------------------------
    @property
    def _per_patch(self) -> int:
        return self.producer.geometry.rows_per_token * self.top_k

    def grid(self, size: tuple[int, int]) -> tuple[int, int]:
        """The patch grid (gh, gw) = (⌈H/ps⌉, ⌈W/ps⌉) of an (H, W) image."""
        ps = self.producer.geometry.patch_size
        assert ps is not None
        return math.ceil(size[0] / ps), math.ceil(size[1] / ps)

    def check_images(self, images: torch.Tensor) -> None:
        """IncompatibleInputError unless ``images`` are (B, C, H, W) finite floats of the
        producer's channels, at least one patch on each side."""
        g = self.producer.geometry
        if images.ndim != 4:
            raise IncompatibleInputError(f"expected images (B, C, H, W), got {tuple(images.shape)}")
        if images.shape[1] != g.channels:
            raise IncompatibleInputError(
                f"images have {images.shape[1]} channel(s), the producer takes {g.channels}"
            )
        assert g.patch_size is not None
        if min(images.shape[-2:]) < g.patch_size:
            raise IncompatibleInputError(
                f"images are {images.shape[-2]}×{images.shape[-1]}, smaller than one "
                f"{g.patch_size}×{g.patch_size} patch"
            )
        if not images.is_floating_point() or not bool(torch.isfinite(images).all()):
            raise IncompatibleInputError("images must be finite floating-point tensors")

    def _encode_batch(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) → (B, L) int64 ids."""
        grid = self.grid(tuple(images.shape[-2:]))  # type: ignore[arg-type]
        return self.sequences(self.axis_ids(images), grid)

    def _check_ids(self, ids: torch.Tensor) -> None:
        bad = ((ids < 0) | (ids >= self.vocab_size)).nonzero().flatten()
        if len(bad):
            i = int(bad[0])
            raise IncompatibleInputError(
                f"token {int(ids[i])} at position {i} is outside the vocabulary "
                f"0..{self.vocab_size - 1}"
            )

    def _parse(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
        """One sequence → (indices (P, V, k), signs (P, V, k), grid), or a clear refusal."""
        self._check_ids(ids)
        while len(ids) and int(ids[-1]) == self.pad_token_id:
            ids = ids[:-1]
        if len(ids) < 2 or int(ids[0]) != self.image_start_token_id:
            raise IncompatibleInputError("a token sequence must begin with <image_start>")
        if int(ids[-1]) != self.image_end_token_id:
            raise IncompatibleInputError("a token sequence must end with <image_end>")
        body = ids[1:-1]
        starts = (body == self.row_start_token_id).nonzero().flatten()
        gh = len(starts)
        if gh == 0 or int(starts[0]) != 0:
            raise IncompatibleInputError("the image body must begin with <row_start>")
        row_len = len(body) // gh - 1
        expected = torch.arange(gh) * (row_len + 1)
        if len(body) != gh * (row_len + 1) or not torch.equal(starts, expected):
            raise IncompatibleInputError("every <row_start> must open a row of the same length")
        if row_len == 0 or row_len % self._per_patch:
            raise IncompatibleInputError(
                f"a row holds {row_len} tokens, not a positive multiple of V·k = {self._per_patch}"
            )
        axes = body.reshape(gh, row_len + 1)[:, 1:].flatten()
        if bool((axes >= self.image_start_token_id).any()):
            raise IncompatibleInputError("special tokens inside a row of axis tokens")
        gw = row_len // self._per_patch
        v = self.producer.geometry.rows_per_token
        codes = axes.reshape(gh * gw, v, self.top_k)
        return codes // 2, 1 - 2 * (codes % 2), (gh, gw)

    def _fit(
        self, images: torch.Tensor, grid: tuple[int, int], target_size: tuple[int, int] | None
    ) -> torch.Tensor:
        if target_size is None:
            return images
        h, w = target_size
        if h < 1 or w < 1:
            raise ValueError(f"target_size must be positive, got {target_size}")
        if self.grid((h, w)) == grid:
            return images[..., :h, :w]
        return interpolate(
            images, size=(h, w), mode="bilinear", align_corners=False, antialias=True
        )
