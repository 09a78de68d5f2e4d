"""Helpers shared by the Beam steps: the tag for rejected lines and how to build one."""
from __future__ import annotations

from pipeline.records import Line, Rejected

REJECTED = "rejected"
SAMPLE_CHARS = 500   # rejected samples keep this much text


def reject(line: Line, reason: str, detail: str = "") -> Rejected:
    # Full text is kept (the stats need its byte length); samples are truncated when written.
    return Rejected(line.source, line.lang, line.path, line.line_no, reason, line.text, detail)
