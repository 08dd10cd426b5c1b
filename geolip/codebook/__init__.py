"""The codebook artifact: schema, byte-exact io, algebra and quality."""

from geolip.codebook.algebra import CodebookDiff, compatibility_report
from geolip.codebook.core import Codebook, Quantized, canonicalize_axes
from geolip.codebook.schema import (
    FORMAT_TAG,
    FORMAT_VERSION,
    CodebookMeta,
    ControlReport,
    ExtractionInfo,
    Lineage,
    NullReport,
    ProducerInfo,
    QualityReport,
)

__all__ = [
    "FORMAT_TAG",
    "FORMAT_VERSION",
    "Codebook",
    "CodebookDiff",
    "CodebookMeta",
    "ControlReport",
    "ExtractionInfo",
    "Lineage",
    "NullReport",
    "ProducerInfo",
    "QualityReport",
    "Quantized",
    "canonicalize_axes",
    "compatibility_report",
]
