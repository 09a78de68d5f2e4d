"""Step 1: read every (catalog entry, file) pair into Lines.

The (entry, file) pairs are expanded and validated on the launching machine (so a bad catalog
fails before any work), created with `beam.Create`, reshuffled so files spread over workers, and
read in batches by `batches.ReadBatches` through the readers' `read_file(entry, path)`. A line a
reader could not read (text None) is dropped here with the reader's reason (e.g. `decode`).
"""

from __future__ import annotations

from pipeline.records import Line


def readable(line: Line) -> Line:
    """The line, or, when the reader could not read it, the line dropped with the reader's reason;
    its text becomes the reader's `detail` (a repr of the raw bytes), which the stats count and
    the rejected samples show."""
    if line.text is None:
        return line._replace(text=line.detail, reason=line.reason or "unreadable", detail="")
    return line
