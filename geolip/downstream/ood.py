"""Self-validating inference (OMEGA §7): the codebook of the input itself, compared with the
producer's reference codebook.

The input codebook goes through the extraction path of :mod:`geolip.producers.extract`:
rows M (B, P, V, D) → mean over patches, then over images → (V, D) → antipodal collapse →
axes. Its distance to the reference is the RMS chordal residual √mean(2 − 2|cos|) ∈ [0, √2]
after projective alignment with unknown matching and signs (:func:`align_projective`), the
same number as :meth:`Codebook.distance`; the z-score compares the mean residual angle with
alignments of i.i.d. uniform codebooks of the same shapes (negative: closer than chance).

- :meth:`ValidityScorer.validity_score`: one codebook for the whole batch (the OMEGA form).
- :meth:`ValidityScorer.image_distances`: one codebook per image (mean over its own patches),
  a per-image OOD score.
- :meth:`ValidityScorer.predict_with_confidence`: reconstruction plus a calibrated confidence,
  the conformal p-value of the image's distance among in-distribution calibration distances.

The random-codebook z-score is no OOD test: every real input, in- or out-of-distribution, sits
far below that null (measured z −5 to −14), since any producer's codebook is closer to its own
reference than i.i.d. axes are. The null that can separate them is the in-distribution one:
:meth:`ValidityScorer.calibrate_batches` scores held-out in-distribution batches of the same
size, and :meth:`validity_score` then reports the scored batch's percentile among them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import torch

from geolip.codebook import Codebook
from geolip.data.dataset import ImageDataset
from geolip.downstream.features import check_inputs
from geolip.downstream.ood_baselines import Images, iter_batches, reconstruction_mse
from geolip.producers.contract import Producer, require_reconstructor
from geolip.producers.rows import aggregate_rows
from geolip.solvers.alignment import ProjectiveAlignment, align_projective
from geolip.solvers.projective import Collapse, antipodal_collapse


@dataclass(frozen=True)
class Validity:
    """A batch's codebook against the reference.

    Attributes:
        distance: RMS chordal residual after alignment, in [0, √2].
        mean_residual_deg: mean projective angle between matched axes, degrees.
        z_score: of the mean residual against the null of i.i.d. random codebooks (``None``
            without null trials); see ``z_score_null``: it tells a codebook from noise, not an
            in-distribution batch from an out-of-distribution one.
        null_mean_deg, null_std_deg: that null's mean and std.
        n_axes, n_pairs: size of the input codebook and antipodal pairs merged into it.
        n_images: images in the batch.
        id_percentile: mid-rank percentile of ``distance`` among the distances of held-out
            in-distribution batches (:meth:`ValidityScorer.calibrate_batches`); ``None``
            uncalibrated. Near 100: farther than in-distribution batches (OOD).
        id_p_value: (1 + #{ID batch distances ≥ distance}) / (n + 1), the conformal p-value.
        id_batch_mean, id_batch_sd, id_batches, id_batch_images: those ID batch distances.
        z_score_null: what ``z_score`` is measured against.
    """

    distance: float
    mean_residual_deg: float
    z_score: float | None
    null_mean_deg: float | None
    null_std_deg: float | None
    n_axes: int
    n_pairs: int
    n_images: int
    id_percentile: float | None = None
    id_p_value: float | None = None
    id_batch_mean: float | None = None
    id_batch_sd: float | None = None
    id_batches: int | None = None
    id_batch_images: int | None = None
    z_score_null: str = "i.i.d. random codebooks (not in- vs out-of-distribution)"


def _shape(images: Images) -> tuple[int, int, tuple[int, int]]:
    if isinstance(images, ImageDataset):
        return len(images), images.channels, images.size
    if images.ndim != 4:
        raise ValueError(f"expected images (B, C, H, W), got shape {tuple(images.shape)}")
    return images.shape[0], images.shape[1], (images.shape[2], images.shape[3])


@dataclass(frozen=True)
class ValidityScorer:
    """A frozen producer with its reference codebook; immutable (``calibrate`` returns a copy).

    Attributes:
        producer: any module with ``encode_rows`` and a forward returning ``recon``.
        reference: the producer's codebook (same D).
        threshold: antipodal pair threshold used for input codebooks (as extraction).
        null_trials: null alignments behind each batch z-score (0: no z-score).
        seed: seed of the alignment starts and null codebooks.
        batch_size: images encoded at once.
        id_distances: sorted (N,) per-image distances of in-distribution calibration images.
        native_mse: median per-image reconstruction MSE on those images (the native floor).
        id_batch_distances: sorted (n,) batch distances of held-out in-distribution batches
            of ``id_batch_images`` images each (:meth:`calibrate_batches`).
    """

    producer: Producer
    reference: Codebook
    threshold: float = -0.9
    null_trials: int = 16
    seed: int = 0
    batch_size: int = 32
    id_distances: torch.Tensor | None = None
    native_mse: float | None = None
    id_batch_distances: torch.Tensor | None = None
    id_batch_images: int | None = None

    def _check(self, images: Images) -> None:
        n, c, size = _shape(images)
        check_inputs(self.producer, self.reference, n_images=n, channels=c, size=size)

    @torch.no_grad()
    def _rows(self, images: Images) -> Iterator[torch.Tensor]:
        """M (b, P, V, D) float64 on the CPU, batch by batch."""
        with self.producer.frozen():
            for x in iter_batches(images, self.batch_size):
                yield self.producer.encode_rows(x.to(self.producer.device)).double().cpu()

    def _align(self, rows: torch.Tensor, null_trials: int) -> tuple[ProjectiveAlignment, Collapse]:
        collapse = antipodal_collapse(rows, self.threshold)
        fit = align_projective(
            self.reference.axes.double(), collapse.axes, null_trials=null_trials, seed=self.seed
        )
        return fit, collapse

    def input_codebook(self, images: Images) -> Codebook:
        """The batch's own codebook: extraction's mean-of-means rows, antipodally collapsed."""
        self._check(images)
        return Codebook.from_axes(
            antipodal_collapse(self._batch_rows(images), self.threshold).axes, name="input"
        )

    def _batch_rows(self, images: Images) -> torch.Tensor:
        """(V, D): patch means averaged over all images, batch-size independent."""
        total, count = None, 0
        for m in self._rows(images):
            per_image = m.mean(dim=1)  # (b, V, D)
            part = per_image.sum(dim=0)
            total = part if total is None else total + part
            count += m.shape[0]
        assert total is not None  # _check refused empty inputs
        return total / count

    def validity_score(self, images: Images) -> Validity:
        """Distance of the whole batch's codebook to the reference, with its null z-score.

        Raises:
            DatasetError, IncompatibleInputError: empty batch or images the producer cannot
                take, before any encoding.
        """
        self._check(images)
        n = _shape(images)[0]
        fit, collapse = self._align(self._batch_rows(images), self.null_trials)
        validity = Validity(
            distance=fit.rms_chordal,
            mean_residual_deg=fit.mean_residual_deg,
            z_score=fit.z_score,
            null_mean_deg=fit.null_mean_deg,
            null_std_deg=fit.null_std_deg,
            n_axes=collapse.n_axes,
            n_pairs=collapse.n_pairs,
            n_images=n,
        )
        ref = self.id_batch_distances
        if ref is None:
            return validity
        d = fit.rms_chordal
        below, ties = int((ref < d).sum()), int((ref == d).sum())
        return replace(
            validity,
            id_percentile=100.0 * (below + 0.5 * ties) / ref.numel(),
            id_p_value=(1 + int((ref >= d).sum())) / (ref.numel() + 1),
            id_batch_mean=ref.mean().item(),
            id_batch_sd=ref.std().item(),
            id_batches=ref.numel(),
            id_batch_images=self.id_batch_images,
        )

    def calibrate_batches(self, images: Images, batch_images: int) -> ValidityScorer:
        """A copy holding the batch distances of disjoint in-distribution batches of
        ``batch_images`` consecutive images (⌊N / batch_images⌋ ≥ 2 of them; a remainder is
        dropped): the null of :meth:`validity_score` that in-distribution inputs pass and
        out-of-distribution inputs can fail. Use batches of the size you will score.

        Raises:
            ValueError: fewer than two whole batches.
        """
        n = _shape(images)[0]
        count = n // batch_images if batch_images >= 1 else 0
        if count < 2:
            raise ValueError(
                f"calibrating batches of {batch_images} images needs at least "
                f"{2 * max(batch_images, 1)} in-distribution images, got {n}"
            )
        self._check(images)
        out = []
        for i in range(count):
            idx = list(range(i * batch_images, (i + 1) * batch_images))
            part = images.subset(idx) if isinstance(images, ImageDataset) else images[idx]
            out.append(self._align(self._batch_rows(part), 0)[0].rms_chordal)
        distances = torch.tensor(out, dtype=torch.float64).sort().values
        return replace(self, id_batch_distances=distances, id_batch_images=batch_images)

    def image_distances(self, images: Images) -> torch.Tensor:
        """(N,) float64: each image's own codebook (mean of its P patches' rows, collapsed)
        against the reference; an OOD score (higher = farther)."""
        self._check(images)
        out = []
        for m in self._rows(images):
            for i in range(m.shape[0]):
                out.append(self._align(aggregate_rows(m[i : i + 1]), 0)[0].rms_chordal)
        return torch.tensor(out, dtype=torch.float64)

    def calibrate(self, images: Images) -> ValidityScorer:
        """A copy calibrated on in-distribution images: their per-image distances (for the
        confidence) and their median reconstruction MSE (the native floor)."""
        distances = self.image_distances(images)
        mse = reconstruction_mse(self.producer, images, self.batch_size)
        return replace(self, id_distances=distances.sort().values, native_mse=float(mse.median()))

    def confidence(self, distances: torch.Tensor) -> torch.Tensor:
        """Conformal p-value (1 + #{calibration distances ≥ d}) / (n + 1) ∈ (0, 1] per
        distance: rejecting when it is ≤ α flags at most a fraction α of in-distribution
        inputs (exchangeable with the calibration set)."""
        if self.id_distances is None:
            raise RuntimeError("the engine is not calibrated: use engine.calibrate(id_images)")
        ref = self.id_distances
        below = torch.searchsorted(ref, distances.double(), right=False)  # #{ref < d}
        return (1 + ref.numel() - below).double() / (ref.numel() + 1)

    @torch.no_grad()
    def predict_with_confidence(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reconstruction (B, C, H, W) and confidence (B,) ∈ (0, 1] of a calibrated engine."""
        self._check(images)
        distances = self.image_distances(images)
        decoder = require_reconstructor(self.producer, "predict_with_confidence")
        with self.producer.frozen():
            recon = decoder.reconstruct(images.to(self.producer.device))
        return recon, self.confidence(distances)
