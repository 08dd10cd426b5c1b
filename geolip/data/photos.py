"""Natural-photo tiles cut from the photographs bundled inside installed packages (no download).

Eleven RGB photographs: eight from scikit-image's data folder, China and Flower from
scikit-learn's sample images, Grace Hopper from matplotlib's sample data. Each is cut into
non-overlapping ``tile`` × ``tile`` squares in raster order (a ragged border is dropped); the
label of a tile is the photograph it came from. scikit-learn and matplotlib are dependencies of
geolip; scikit-image is optional (``pip install 'geolip[data]'`` or ``pip install
scikit-image``).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from geolip.data.dataset import ImageDataset
from geolip.errors import DatasetError, OptionalDependencyError


def _package_dir(package: str, install: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise OptionalDependencyError(package, "natural-photo tiles", install)
    return Path(next(iter(spec.submodule_search_locations)))


def _skimage(name: str) -> Callable[[], Path]:
    return lambda: _package_dir("skimage", "pip install scikit-image") / "data" / name


def _sklearn(name: str) -> Callable[[], Path]:
    return lambda: _package_dir("sklearn", "pip install scikit-learn") / "datasets/images" / name


def _matplotlib(name: str) -> Callable[[], Path]:
    def locate() -> Path:
        from matplotlib import cbook

        return Path(cbook.get_sample_data(name, asfileobj=False))

    return locate


PHOTOS: dict[str, Callable[[], Path]] = {
    "astronaut": _skimage("astronaut.png"),
    "chelsea": _skimage("chelsea.png"),
    "coffee": _skimage("coffee.png"),
    "rocket": _skimage("rocket.jpg"),
    "motorcycle": _skimage("motorcycle_left.png"),
    "hubble_deep_field": _skimage("hubble_deep_field.jpg"),
    "retina": _skimage("retina.jpg"),
    "ihc": _skimage("ihc.png"),
    "china": _sklearn("china.jpg"),
    "flower": _sklearn("flower.jpg"),
    "grace_hopper": _matplotlib("grace_hopper.jpg"),
}
"""Photograph name → where its file is (resolved lazily; the package may be missing)."""


def read_photo(name: str) -> torch.Tensor:
    """One bundled photograph as (3, H, W) float32 in [0, 1].

    Raises:
        OptionalDependencyError: the package that ships it is not installed.
        DatasetError: unknown name, or the file is missing or unreadable.
    """
    if name not in PHOTOS:
        raise DatasetError(f"unknown photo {name!r}; known: {', '.join(PHOTOS)}")
    path = PHOTOS[name]()
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (OSError, UnidentifiedImageError) as err:
        raise DatasetError(f"cannot read photo {name!r} ({err})", path) from err
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1).float().div(255.0)


def tile_image(image: torch.Tensor, tile: int) -> torch.Tensor:
    """(C, H, W) → (n, C, tile, tile): non-overlapping squares in raster order, border dropped."""
    c, h, w = image.shape
    rows, cols = h // tile, w // tile
    cut = image[:, : rows * tile, : cols * tile]
    return cut.reshape(c, rows, tile, cols, tile).permute(1, 3, 0, 2, 4).reshape(-1, c, tile, tile)


def load_photos(
    tile: int = 64,
    n: int | None = None,
    *,
    seed: int = 0,
    photos: Sequence[str] = tuple(PHOTOS),
) -> ImageDataset:
    """Tiles of the bundled photographs in a seeded random order.

    Args:
        tile: tile side in pixels of the original photographs (at least 2).
        n: keep the first n of the shuffled tiles (all when ``None``).
        seed: the shuffle.
        photos: which photographs (names of :data:`PHOTOS`); their order fixes the labels.

    Returns:
        An :class:`ImageDataset` of (N, 3, tile, tile) images in [0, 1]; classes are the photo
        names, labels the index of the source photo; captions ``"a tile of <photo>"``.
    """
    if tile < 2:
        raise DatasetError(f"photo tiles must be at least 2 pixels, got {tile}")
    if not photos:
        raise DatasetError("load_photos needs at least one photo")
    tiles, labels = [], []
    for label, name in enumerate(photos):
        cut = tile_image(read_photo(name), tile)
        tiles.append(cut)
        labels.append(torch.full((cut.shape[0],), label, dtype=torch.long))
    images, y = torch.cat(tiles), torch.cat(labels)
    if images.shape[0] == 0:
        raise DatasetError(f"no photo is at least {tile}×{tile} pixels")
    names = tuple(photos)
    captions = [f"a tile of {names[i]}" for i in y.tolist()]
    dataset = ImageDataset.from_tensors(f"photos-{tile}", images, y, names, captions)
    return dataset.shuffled(seed).first(n)
