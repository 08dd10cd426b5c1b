"""Datasets through a tokenizer, token and image files, and how much of the vocabulary is used.

A token file is one safetensors file: ``input_ids`` (N, L) int64, ``attention_mask`` (N, L)
int64 and string metadata (``format`` ``geolip.tokens``, version, the tokenizer's producer and
codebook ids, top_k, vocab_size, dataset name and fingerprint). An image file holds
``images`` (N, C, H, W) float32 (``format`` ``geolip.images``). Both are written atomically
and read back before they are published.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch
from safetensors.torch import save

from geolip._files import atomic_write
from geolip._progress import progress_bar
from geolip._safetensors import load_tensors
from geolip.data.dataset import ImageDataset
from geolip.downstream.features import check_inputs
from geolip.downstream.tokenizer import GeolipImageTokenizer
from geolip.errors import CheckpointError, IncompatibleInputError
from geolip.solvers.projective_kmeans import usage_perplexity

TOKENS_FORMAT = "geolip.tokens"
IMAGES_FORMAT = "geolip.images"
FILES_VERSION = "1"


def tokenize_dataset(
    tokenizer: GeolipImageTokenizer,
    dataset: ImageDataset,
    *,
    batch_size: int = 32,
    progress: bool = False,
) -> torch.Tensor:
    """Every image of ``dataset`` → token ids (N, L) int64 (one size, so one length).

    Raises:
        DatasetError, IncompatibleInputError: channels, size or an empty dataset the producer
            cannot take, before any image is encoded.
    """
    check_dataset(tokenizer, dataset)
    parts = []
    with progress_bar(progress) as bar:
        task = bar.add_task(f"tokenizing {dataset.name}", total=len(dataset))
        for images in dataset.batches(batch_size):
            parts.append(tokenizer(images, return_tensors="pt")["input_ids"])
            bar.advance(task, images.shape[0])
    return torch.cat(parts)


def check_dataset(tokenizer: GeolipImageTokenizer, dataset: ImageDataset) -> None:
    """DatasetError or IncompatibleInputError for a dataset the tokenizer's producer cannot
    take (channels, size, no images), before any image is encoded."""
    check_inputs(
        tokenizer.producer,
        tokenizer.codebook,
        n_images=len(dataset),
        channels=dataset.channels,
        size=dataset.size,
    )


def axis_usage(tokenizer: GeolipImageTokenizer, input_ids: torch.Tensor) -> torch.Tensor:
    """(K,) int64: how often each axis occurs among the axis tokens of ``input_ids``, either
    sign (special and pad tokens are not counted)."""
    ids = torch.as_tensor(input_ids).flatten()
    axes = ids[(ids >= 0) & (ids < 2 * tokenizer.codebook.size)] // 2
    return torch.bincount(axes, minlength=tokenizer.codebook.size)


def usage_report(tokenizer: GeolipImageTokenizer, input_ids: torch.Tensor) -> dict[str, float]:
    """Vocabulary use of token ids: axes used (of K) and the usage perplexity (K when every
    axis is used equally, 1 when one axis takes every token)."""
    usage = axis_usage(tokenizer, input_ids)
    return {
        "axes": tokenizer.codebook.size,
        "axes_used": int((usage > 0).sum()),
        "perplexity": usage_perplexity(usage) if int(usage.sum()) else 0.0,
    }


def write_tokens(
    path: str | Path,
    tokenizer: GeolipImageTokenizer,
    input_ids: torch.Tensor,
    dataset: ImageDataset,
) -> Path:
    """Write a token file (module docstring) for ``input_ids`` (N, L) made from ``dataset``."""
    return write_token_ids(path, tokenizer, input_ids, dataset.name, dataset.fingerprint)


def write_token_ids(
    path: str | Path,
    tokenizer: GeolipImageTokenizer,
    input_ids: torch.Tensor,
    source: str,
    fingerprint: str = "",
) -> Path:
    """Write a token file for ``input_ids`` (N, L) from any ``source`` (a dataset name, a
    sampler), with the fingerprint of its images if there are any."""
    ids = torch.as_tensor(input_ids, dtype=torch.int64).contiguous()
    mask = (ids != tokenizer.pad_token_id).to(torch.int64)
    metadata = {
        "format": TOKENS_FORMAT,
        "version": FILES_VERSION,
        "producer_id": tokenizer.producer.producer_id,
        "codebook_id": tokenizer.codebook.id,
        "top_k": str(tokenizer.top_k),
        "vocab_size": str(tokenizer.vocab_size),
        "dataset": source,
        "dataset_fingerprint": fingerprint,
    }
    payload = save({"input_ids": ids, "attention_mask": mask}, metadata=metadata)
    return atomic_write(path, payload, verify=lambda tmp: read_tokens(tmp, tokenizer))


def read_tokens(path: str | Path, tokenizer: GeolipImageTokenizer) -> torch.Tensor:
    """The ``input_ids`` (N, L) of a token file written for this tokenizer.

    Raises:
        CheckpointError: not a token file, or one made by another producer or codebook.
    """
    tensors, meta = load_tensors(path, lambda problem, p: CheckpointError(problem, p))
    if meta.get("format") != TOKENS_FORMAT or "input_ids" not in tensors:
        raise CheckpointError("not a geolip token file", path)
    if meta.get("version") != FILES_VERSION:
        raise CheckpointError(f"token file version {meta.get('version')!r} is unknown", path)
    for key, mine in (
        ("producer_id", tokenizer.producer.producer_id),
        ("codebook_id", tokenizer.codebook.id),
    ):
        if meta.get(key) != mine:
            raise CheckpointError(
                f"tokens were made with {key} {str(meta.get(key))[:12]}, this tokenizer has "
                f"{mine[:12]}",
                path,
            )
    return tensors["input_ids"]


def write_images(path: str | Path, images: torch.Tensor) -> Path:
    """Write (N, C, H, W) images as an image file (module docstring)."""
    x = images.detach().cpu().float().contiguous()
    payload = save({"images": x}, metadata={"format": IMAGES_FORMAT, "version": FILES_VERSION})
    return atomic_write(path, payload, verify=lambda tmp: read_images(tmp))


def read_images(path: str | Path) -> torch.Tensor:
    """The ``images`` (N, C, H, W) of an image file; CheckpointError for anything else."""
    tensors, meta = load_tensors(path, lambda problem, p: CheckpointError(problem, p))
    if meta.get("format") != IMAGES_FORMAT or set(tensors) != {"images"}:
        raise CheckpointError("not a geolip image file", path)
    images = tensors["images"]
    if images.ndim != 4:
        raise CheckpointError(f"images must be (N, C, H, W), got {tuple(images.shape)}", path)
    return images


def image_grid_png(rows: list[torch.Tensor], labels: list[str], scale: int = 2) -> bytes:
    """A PNG of image rows: row r shows ``rows[r]`` (N, C, H, W) left to right, labelled
    ``labels[r]``. Each image is min–max scaled to [0, 1] by itself (the producers see
    standardised images, so absolute levels mean nothing) and enlarged ``scale`` times."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if len(rows) != len(labels) or not rows:
        raise IncompatibleInputError("one label per row of images, at least one row")
    n = max(r.shape[0] for r in rows)
    h, w = rows[0].shape[-2:]
    fig, axes = plt.subplots(
        len(rows),
        n,
        figsize=(n * w * scale / 100 + 1, len(rows) * h * scale / 100 + 0.3),
        squeeze=False,
    )
    for r, (images, label) in enumerate(zip(rows, labels, strict=True)):
        for i in range(n):
            ax = axes[r][i]
            ax.axis("off")
            if i >= images.shape[0]:
                continue
            x = images[i].detach().cpu().float()
            x = (x - x.min()) / (x.max() - x.min()).clamp(min=1e-8)
            ax.imshow(x.permute(1, 2, 0).squeeze(-1).numpy(), cmap="gray", interpolation="nearest")
        axes[r][0].set_title(label, fontsize=7, loc="left")
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.97, wspace=0.05, hspace=0.3)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def write_png(path: str | Path, data: bytes) -> Path:
    """Write PNG bytes atomically, decoded by Pillow before the rename."""

    def verify(tmp: Path) -> None:
        from PIL import Image

        with Image.open(tmp) as image:
            image.verify()

    return atomic_write(path, data, verify=verify)
