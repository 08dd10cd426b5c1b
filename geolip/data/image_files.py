"""Image files (PNG, JPEG, anything Pillow reads) as a tensor of images."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from geolip.data.dataset import STANDARDIZE_EPS
from geolip.errors import DatasetError


def load_image_files(paths: Sequence[str | Path], *, standardize: bool = True) -> torch.Tensor:
    """Read images of one size into (N, C, H, W) float32.

    Grey files (modes ``L``, ``LA``, ``I``, ``1``) give C = 1, every other mode C = 3 (RGB;
    alpha dropped). Values are scaled to [0, 1], then, with ``standardize``, each image to
    zero mean and unit std as the dataset specs do by default.

    Raises:
        DatasetError: no paths, a file that cannot be read as an image, or images of
            different sizes or channel counts (each names the file).
    """
    from PIL import Image, UnidentifiedImageError

    if not paths:
        raise DatasetError("no image files given")
    images = []
    for path in paths:
        p = Path(path)
        try:
            with Image.open(p) as image:
                grey = image.mode in ("L", "LA", "I", "I;16", "1")
                array = np.asarray(image.convert("L" if grey else "RGB"), dtype=np.float32)
        except (OSError, UnidentifiedImageError) as err:
            raise DatasetError(f"not a readable image ({err})", p) from err
        x = torch.from_numpy(array / 255.0)
        x = x[None] if grey else x.permute(2, 0, 1)
        if images and x.shape != images[0].shape:
            raise DatasetError(
                f"is {tuple(x.shape)} (C, H, W), the first image {tuple(images[0].shape)}", p
            )
        images.append(x)
    batch = torch.stack(images).float()
    if standardize:
        mean = batch.mean(dim=(1, 2, 3), keepdim=True)
        std = batch.std(dim=(1, 2, 3), keepdim=True, unbiased=False)
        batch = (batch - mean) / (std + STANDARDIZE_EPS)
    return batch
