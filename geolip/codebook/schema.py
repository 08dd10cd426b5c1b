"""The codebook meta: a pydantic model, serialised as canonical JSON inside the artifact.

The JSON Schema of :class:`CodebookMeta` is exported to ``docs/codebook_meta.schema.json``.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

FORMAT_TAG = "geolip.codebook"
FORMAT_VERSION = 1
"""Bumped on any change of bytes or meaning; readers refuse versions they do not know."""

Operation = Literal["create", "random", "extract", "merge", "extend", "align", "rotate", "diff"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProducerInfo(_Model):
    """The model that emitted the rows the codebook was extracted from."""

    kind: str = Field(description="producer family, e.g. 'sphere_solver'")
    name: str | None = Field(default=None, description="preset or checkpoint name")
    config_sha256: str | None = Field(default=None, description="sha256 of the canonical config")
    weights_sha256: str | None = Field(default=None, description="sha256 of the weights file")


class ExtractionInfo(_Model):
    """How rows were turned into axes (spec §B.1)."""

    calibration: str = Field(description="calibration set name, e.g. 'sixteen_noise'")
    n: int = Field(ge=1, description="number of calibration inputs")
    seed: int
    aggregation: str = Field(
        description="how rows became axes: 'mean' or 'median' (then collapsed), 'kmeans'"
    )
    pair_threshold: float | None = Field(
        description="cosine below which rows count as antipodal; null: no antipodal collapse "
        "(aggregation 'kmeans' clusters the rows themselves)"
    )
    n_rows: int = Field(ge=1, description="V, rows per patch before collapse")
    n_pairs: int = Field(ge=0, description="antipodal pairs merged into one axis each")


class NullReport(_Model):
    """Where the observed deviation falls in an i.i.d. null distribution (spec §B.4)."""

    kind: Literal["rows", "axes"] = Field(
        description="'rows': V random rows collapsed; 'axes': K random axes"
    )
    n_trials: int = Field(ge=1)
    seed: int
    deviation_mean: float
    deviation_sd: float
    deviation_p5: float
    deviation_p95: float
    clean_fraction: float = Field(description="share of null trials that are projective-clean")
    percentile: float = Field(ge=0, le=100, description="percentile of the observed deviation")
    pairs_mean: float | None = None
    pairs_percentile: float | None = None


ControlName = Literal["untrained", "shuffled_calibration", "other_calibration", "constant_input"]


class ControlReport(_Model):
    """The same extraction run on a control: the untrained network, calibration from another
    noise family, all-zero images, or spatially shuffled calibration."""

    name: ControlName
    description: str
    n_axes: int = Field(ge=1)
    n_pairs: int = Field(ge=0)
    deviation: float
    statute: Literal["degenerate", "uniform", "polytope", "unclassified"]
    null_percentile: float = Field(ge=0, le=100, description="control deviation in the i.i.d. null")
    distance_to_observed: float = Field(description="RMS chordal residual after alignment")
    distance_null_mean: float | None = Field(
        default=None, description="mean distance between i.i.d. codebooks of the same K, D"
    )
    distance_null_sd: float | None = Field(default=None, description="sd of that null")
    distance_null_trials: int | None = Field(default=None, description="pairs in that null")
    distance_z: float | None = Field(
        default=None, description="(distance_to_observed - null mean) / null sd"
    )
    distance_percentile: float | None = Field(
        default=None, ge=0, le=100, description="percentile of distance_to_observed in the null"
    )


class SkippedControl(_Model):
    """A control that was not run because it could not differ from the observed input."""

    name: ControlName
    reason: str


class QualityReport(_Model):
    """Geometric statistics of the axes, each beside its baseline and null."""

    mean_projective_angle: float = Field(description="mean acos|cos| over axis pairs, radians")
    mean_angle_method: str = Field(description="'exact' or 'sampled:N'")
    uniform_baseline: float = Field(description="exact quadrature value for uniform RP^(D-1)")
    uniform_baseline_mc: float = Field(description="upstream 4,096-point Monte-Carlo value")
    deviation: float = Field(description="mean_projective_angle - uniform_baseline")
    statute: Literal["degenerate", "uniform", "polytope", "unclassified"]
    clean: bool = Field(description="|deviation| < 0.05")
    pair_fraction: float | None = Field(default=None, description="n_pairs / n_axes")
    pair_fraction_rows: float | None = Field(default=None, description="2 n_pairs / V")
    effective_rank: float = Field(description="effective rank of the axes' singular values")
    effective_rank_null_mean: float = Field(
        description="mean over the null codebooks of ``null`` (the same draws as the deviation's)"
    )
    effective_rank_null_sd: float | None = Field(
        default=None, description="sd of the effective rank over those null codebooks"
    )
    effective_rank_null_trials: int | None = Field(default=None, description="null codebooks")
    effective_rank_percentile: float | None = Field(
        default=None, ge=0, le=100, description="percentile of effective_rank in that null"
    )
    null: NullReport
    controls: list[ControlReport] = Field(
        default_factory=list, description="extraction controls (extracted codebooks only)"
    )
    controls_skipped: list[SkippedControl] = Field(
        default_factory=list, description="controls not run, each with the reason"
    )


class Lineage(_Model):
    """How this codebook was made and from which parents (by id)."""

    operation: Operation
    parents: list[str] = Field(default_factory=list)
    parameters: dict[str, Any] = Field(default_factory=dict)


class CodebookMeta(_Model):
    """Everything about a codebook that is not its tensors. Not part of the id."""

    format: Literal["geolip.codebook"] = FORMAT_TAG
    format_version: int = FORMAT_VERSION
    name: str
    dim: int = Field(ge=2, description="D, ambient dimension")
    size: int = Field(ge=1, description="K, number of axes")
    producer: ProducerInfo | None = None
    extraction: ExtractionInfo | None = None
    quality: QualityReport | None = None
    lineage: Lineage = Field(default_factory=lambda: Lineage(operation="create"))
    created_at: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat())
    geolip_version: str
    extra: dict[str, Any] = Field(default_factory=dict, description="free-form, JSON only")

    @model_validator(mode="after")
    def _text_is_unicode(self) -> CodebookMeta:
        # a lone surrogate ("\ud800") passes Python's json but no UTF-8 reader: it would be
        # written and then refused on load, so it is refused here, before anything is written
        try:
            json.dumps(self.model_dump(mode="json"), ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as err:
            raise ValueError(f"text fields must be valid Unicode: {err.reason}") from err
        return self

    def canonical_json(self) -> str:
        """Sorted keys, no whitespace, UTF-8 safe: the exact string stored in the artifact."""
        return json.dumps(
            self.model_dump(mode="json"),
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=True,
            allow_nan=False,
        )


def meta_json_schema() -> str:
    """The JSON Schema of :class:`CodebookMeta`, as committed in docs/codebook_meta.schema.json."""
    return json.dumps(CodebookMeta.model_json_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(meta_json_schema(), end="")
