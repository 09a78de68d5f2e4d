"""Per-batch bookkeeping of the steps: stats counts and rejected samples, summed before Beam sees them.

A DoFn that keeps or drops lines tallies them here and emits, per batch, one COUNTS element per
stats key and one SAMPLES element per drop reason (instead of one element per line).
"""

from __future__ import annotations

import heapq
from collections import defaultdict

from apache_beam import pvalue

from pipeline import counters
from pipeline.records import Line

COUNTS = "counts"  # ((kind, lang, source, ...), (count, bytes)) summed per batch (stats.py)
SAMPLES = "samples"  # (reason, [sample tuples]), the smallest of the batch (sample_tuple)
SAMPLE_CHARS = 500  # rejected samples keep this much text


def text_size(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def sample_tuple(line: Line) -> tuple:
    """A dropped line as its sample; sorts like (source, path, line_no, text), then lang and detail."""
    return line.source, line.path, line.line_no, line.text, line.lang, line.detail


class Tally:
    """Per-batch stats counts and rejected samples (see stats.py for the count keys)."""

    def __init__(self, sample_limit: int):
        self.sample_limit = sample_limit
        self.counts: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
        self.samples: dict[str, list[tuple]] = defaultdict(list)

    def count(self, key: tuple, text: str) -> None:
        entry = self.counts[key]
        entry[0] += 1
        entry[1] += text_size(text)

    def drop(self, line: Line) -> None:
        """A dropped line: its `dropped` count (and `decontam` count), and a candidate sample.
        The full text is counted; samples are truncated when written."""
        self.count(("dropped", line.lang, line.source, line.reason), line.text)
        if line.reason == "decontaminated":
            self.count(("decontam", line.lang, line.source, line.detail), line.text)
        self.samples[line.reason].append(sample_tuple(line))

    def outputs(self):
        for key, (count, size) in self.counts.items():
            counters.inc(key, count)  # live progress in the runner's UI, once per batch
            yield pvalue.TaggedOutput(COUNTS, (key, (count, size)))
        for reason, rows in self.samples.items():
            # Only the smallest `limit` of a batch can be among the smallest `limit` of all.
            yield pvalue.TaggedOutput(SAMPLES, (reason, heapq.nsmallest(self.sample_limit, rows)))
