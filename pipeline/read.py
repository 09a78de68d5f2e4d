"""Step 1: read every (catalog entry, file) pair into Lines.

The (entry, file) pairs are expanded and validated on the launching machine (so a bad catalog
fails before any work), created with `beam.Create`, reshuffled so files spread over workers, and
read by the readers' `read_file(entry, path) -> Iterator[RawLine]`. A RawLine whose text is None
could not be decoded: it leaves as a Rejected with the reader's reason (e.g. `decode`).
"""
from __future__ import annotations

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.metrics import Metrics

from pipeline.records import Line, RawLine, Rejected
from pipeline.steps import REJECTED

class ReadFile(beam.DoFn):
    """(entry, path) -> RawLines, through `read_file(entry, path)` (pipeline.readers.read_file; a
    module-level function, pickled by reference and imported on the worker)."""

    def __init__(self, read_file):
        self.read_file = read_file
        self.files = Metrics.counter("read", "files")

    def process(self, task):
        entry, path = task
        self.files.inc()
        yield from self.read_file(entry, path)


def to_line(raw: RawLine) -> Line | Rejected:
    """RawLine -> Line, or a Rejected carrying the reader's reason when it has no text."""
    if raw.text is None:
        text = raw.raw if raw.raw is not None else ""
        return Rejected(raw.source, raw.lang, raw.path, raw.line_no, raw.reason or "unreadable", text)
    return Line(raw.source, raw.lang, raw.path, raw.line_no, raw.text)


class ToLine(beam.DoFn):
    """RawLine -> Line, or a tagged Rejected carrying the reader's reason."""

    def process(self, raw: RawLine):
        out = to_line(raw)
        yield pvalue.TaggedOutput(REJECTED, out) if isinstance(out, Rejected) else out


def raw_size(raw: RawLine) -> tuple[tuple, tuple[int, int]]:
    """(("records", lang, source), (1, bytes)) of one RawLine, for the `records`/`bytes_read` stats."""
    text = raw.text if raw.text is not None else (raw.raw or "")
    return ("records", raw.lang, raw.source), (1, len(text.encode("utf-8", "surrogatepass")))


class ReadSources(beam.PTransform):
    """[(entry, path)] -> (raw RawLines, Lines, rejected)."""

    def __init__(self, tasks: list, read_file):
        super().__init__()
        self.tasks = tasks
        self.read_file = read_file

    def expand(self, pbegin):
        raw = (
            pbegin
            | "Files" >> beam.Create(self.tasks, reshuffle=False)
            | "SpreadFiles" >> beam.Reshuffle()
            | "ReadFile" >> beam.ParDo(ReadFile(self.read_file))
        )
        lines = raw | "ToLine" >> beam.ParDo(ToLine()).with_outputs(REJECTED, main="lines")
        return raw, lines.lines, lines[REJECTED]
