"""The records that flow through the corpus pipeline.

Readers (pipeline/readers/) turn one catalog entry's file into `RawLine`s; Beam steps turn
those into kept `Line`s or `Rejected` ones. Nothing is ever dropped without a `Rejected`
carrying a reason, so that for every source and language: read = kept + dropped.
"""
from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class RawLine:
    """One text unit as read from a source file, before any cleaning.

    `text` is None when the unit could not be read at all (then `reason` says why, e.g.
    "decode"); `raw` keeps a short repr of the bad bytes for the rejected sample.
    """

    source: str          # catalog entry name
    lang: str            # ISO 639-3 code from the catalog
    path: str            # file it came from (plus "::member" inside an archive)
    line_no: int         # 1-based unit number within that file
    text: str | None
    reason: str | None = None
    raw: str | None = None


@dataclass(frozen=True)
class Line:
    """A text unit inside the pipeline (after decoding)."""

    source: str
    lang: str
    path: str
    line_no: int
    text: str

    def with_text(self, text: str) -> "Line":
        return replace(self, text=text)


@dataclass(frozen=True)
class Rejected:
    """A unit the pipeline dropped, and why (`reason` is a short stable key)."""

    source: str
    lang: str
    path: str
    line_no: int
    reason: str
    text: str            # the text (or a repr of the raw bytes), truncated for samples
    detail: str = ""     # e.g. which eval set a decontaminated line matched
