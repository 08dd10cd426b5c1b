"""The codebook a constellation carries: its anchors, antipodally collapsed, beside the nulls.

A GLFM's rows (``encode_rows``) go through :func:`geolip.producers.extract.extract_codebook`
like any producer's; its anchors are a codebook of their own that no calibration set makes.
:func:`anchor_codebook` builds it the way an extraction does — the A anchor directions are the
V rows, collapsed with the same antipodal threshold — so its quality sits in the same i.i.d.
"rows" null (A random rows collapsed alike). Its control is the constellation at home (the
initial positions, before training), placed in that null and at its distance in the null of
random codebook pairs; the calibration controls are skipped, with the reason, because anchors
do not depend on the input and those controls could not differ.
"""

from __future__ import annotations

import torch

from geolip.codebook import Codebook, ExtractionInfo, Lineage
from geolip.codebook.schema import SkippedControl
from geolip.producers.anchor_constellation import AnchorConstellation
from geolip.producers.contract import ProducerModule
from geolip.producers.controls import control_report
from geolip.solvers.null import null_codebook_stats
from geolip.solvers.projective import antipodal_collapse

ANCHORS = "anchors"
"""The ``calibration`` an anchor codebook's extraction meta records."""
_SKIPPED_REASON = "anchors do not depend on the input, so a calibration control could not differ"


def anchor_codebook(
    model: ProducerModule,
    *,
    threshold: float = -0.9,
    null_trials: int = 300,
    seed: int = 0,
    controls: bool = True,
    distance_null_trials: int = 16,
    name: str | None = None,
) -> Codebook:
    """The anchors of ``model.constellation`` as a codebook with quality beside its null.

    Args:
        model: a producer with an :class:`AnchorConstellation` at ``model.constellation``.
        threshold: anchors with cosine below it are merged into one axis (as extraction does).
        null_trials, seed: the i.i.d. rows null (A rows of dimension D, same threshold).
        controls: add the ``untrained`` control (the anchors at home) and record the skipped
            calibration controls.

    Returns:
        A codebook of K ≤ A axes in R^D: meta ``extraction`` (calibration ``"anchors"``,
        ``n_rows`` = A), ``quality`` with its null (and controls), ``producer``; per-axis
        stats ``pair_flag`` and ``drift`` (radians from home, the mean of a merged pair's).

    Raises:
        TypeError: the model has no constellation (e.g. a GLFM with ``lookup="linear"``).
    """
    constellation = getattr(model, "constellation", None)
    if not isinstance(constellation, AnchorConstellation):
        raise TypeError(f"{type(model).__name__} has no anchor constellation to make a codebook of")
    rows = constellation.positions().detach().double().cpu()
    collapse = antipodal_collapse(rows, threshold)
    drift = constellation.drift().cpu()
    extraction = ExtractionInfo(
        calibration=ANCHORS,
        n=1,
        seed=seed,
        aggregation="none",
        pair_threshold=threshold,
        n_rows=rows.shape[0],
        n_pairs=collapse.n_pairs,
    )
    stats = {
        "pair_flag": torch.cat([torch.ones(collapse.n_pairs), torch.zeros(len(collapse.unpaired))]),
        "drift": torch.cat([drift[collapse.pairs].mean(dim=1), drift[collapse.unpaired]]),
    }
    cb = Codebook.from_axes(
        collapse.axes,
        name=name or ANCHORS,
        stats=stats,
        producer=model.producer_info(),
        extraction=extraction,
        lineage=Lineage(operation="extract", parameters={"source": ANCHORS}),
    )
    quality = cb.assess(null_trials=null_trials, seed=seed)
    if controls:
        n_rows, dim = rows.shape
        null = null_codebook_stats(n_rows, dim, null_trials, "rows", threshold, seed)
        home = antipodal_collapse(constellation.home.detach().double().cpu(), threshold)
        description = "the anchors at home: the same constellation before training"
        report = control_report(
            "untrained", description, cb, home, rows.shape[0], null, seed, distance_null_trials
        )
        skipped = [
            SkippedControl(name=label, reason=_SKIPPED_REASON)
            for label in ("other_calibration", "constant_input", "shuffled_calibration")
        ]
        quality = quality.model_copy(update={"controls": [report], "controls_skipped": skipped})
    return cb.with_meta(quality=quality)
