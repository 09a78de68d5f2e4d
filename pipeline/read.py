"""Step 1: read every (catalog entry, file) pair into Lines.

The (entry, file) pairs are expanded and validated on the launching machine (so a bad catalog
fails before any work), created with `beam.Create`, reshuffled so files spread over workers, and
read by the readers' `read_file(entry, path) -> Iterator[RawLine]`. A RawLine whose text is None
could not be decoded: it leaves as a Rejected with the reader's reason (e.g. `decode`).
"""
from __future__ import annotations

import importlib

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.metrics import Metrics

from pipeline.records import Line, RawLine, Rejected
from pipeline.steps import REJECTED

class ReadFile(beam.DoFn):
    """(entry, path) -> RawLines, through `<readers_module>.read_file` (imported on the worker)."""

    def __init__(self, readers_module: str):
        self.readers_module = readers_module
        self.read_file = None
        self.files = Metrics.counter("read", "files")

    def setup(self):
        self.read_file = importlib.import_module(self.readers_module).read_file

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

    def __init__(self, tasks: list, readers_module: str):
        super().__init__()
        self.tasks = tasks
        self.readers_module = readers_module

    def expand(self, pbegin):
        raw = (
            pbegin
            | "Files" >> beam.Create(self.tasks, reshuffle=False)
            | "SpreadFiles" >> beam.Reshuffle()
            | "ReadFile" >> beam.ParDo(ReadFile(self.readers_module))
        )
        lines = raw | "ToLine" >> beam.ParDo(ToLine()).with_outputs(REJECTED, main="lines")
        return raw, lines.lines, lines[REJECTED]
