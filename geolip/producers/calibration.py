"""What a codebook is extracted from: a noise calibration by name, or any dataset spec.

``gaussian``, ``uniform``, ``sixteen_noise`` and ``ood_sixteen`` are the calibration sets of
:func:`geolip.data.noise.calibration_set` (``n`` images of ``size`` × ``size``, 64 and 64 unless
given); anything else is a dataset spec (:mod:`geolip.data.specs`: ``shapes:n=256,size=64``,
``photos:tile=64``, ``mnist:split=test,n=500``, ...) that names its own images, so ``n`` and
``size`` are then refused rather than silently ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from geolip.data.noise import CALIBRATIONS, calibration_set
from geolip.data.specs import DatasetSpec
from geolip.errors import DatasetError, IncompatibleInputError

NOISE_DEFAULT_N = 64
NOISE_DEFAULT_SIZE = 64


@dataclass(frozen=True)
class Calibration:
    """A resolved calibration.

    Attributes:
        label: what the codebook's meta records: the noise name, or the canonical spec text.
        spec: the dataset spec, or ``None`` for a noise calibration.
    """

    label: str
    spec: DatasetSpec | None


def resolve_calibration(text: str) -> Calibration:
    """A noise calibration name or a dataset spec, validated (no image is made).

    Raises:
        DatasetError: neither a noise calibration nor a valid spec; the message lists both.
    """
    if text in CALIBRATIONS:
        return Calibration(text, None)
    try:
        spec = DatasetSpec.parse(text)
    except DatasetError as err:
        raise DatasetError(
            f"{err.problem} (or a noise calibration: {', '.join(CALIBRATIONS)})"
        ) from None
    return Calibration(str(spec), spec)


def calibration_images(
    calibration: str,
    channels: int,
    *,
    n: int | None = None,
    size: int | None = None,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, str]:
    """The calibration images and the label to record.

    Args:
        calibration: a noise calibration name or a dataset spec (module docstring).
        channels: C the producer takes; a spec whose images have another C is refused (add
            ``channels=C`` to it: grey ↔ colour conversion is the spec's option).
        n, size: images and side of a noise calibration (default 64, 64); refused for a spec.
        seed: seeds a noise calibration (a spec's images follow its own ``seed=``).

    Returns:
        (images (N, C, H, W) float32 on ``device``, label).

    Raises:
        DatasetError: unknown calibration or bad spec. ValueError: ``n`` or ``size`` given
        with a spec. IncompatibleInputError: channels differ from the producer's.
    """
    resolved = resolve_calibration(calibration)
    if resolved.spec is None:
        images = calibration_set(
            calibration,
            NOISE_DEFAULT_N if n is None else n,
            size=NOISE_DEFAULT_SIZE if size is None else size,
            channels=channels,
            seed=seed,
            device=device,
        )[0]
        return images, resolved.label
    for option, value in (("n", n), ("size", size)):
        if value is not None:
            raise ValueError(
                f"calibration {calibration!r} is a dataset spec, which names its own images: "
                f"set {option} inside it ({resolved.spec.name}:{option}={value},...)"
            )
    dataset = resolved.spec.open()
    if dataset.channels != channels:
        raise IncompatibleInputError(
            f"calibration {calibration!r} has {dataset.channels} channel(s), the producer "
            f"takes {channels}; add channels={channels} to the spec"
        )
    if len(dataset) == 0:
        raise DatasetError(f"calibration {calibration!r} holds no images")
    return dataset.images.to(device), resolved.label


def image_size(images: torch.Tensor) -> int | list[int]:
    """The side of square images (N, C, S, S), else [H, W]: what extraction lineage records."""
    h, w = images.shape[-2:]
    return int(h) if h == w else [int(h), int(w)]
