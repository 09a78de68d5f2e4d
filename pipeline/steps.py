"""Helpers shared by the Beam steps: the tag for rejected lines and how to build one."""
from __future__ import annotations

import heapq
from collections import defaultdict

from apache_beam import pvalue

from pipeline import counters
from pipeline.records import Line, Rejected

REJECTED = "rejected"
COUNTS = "counts"     # batched steps: ((kind, lang, source, ...), (count, bytes)) summed per batch
SAMPLES = "samples"   # batched steps: (reason, [rejected sample tuples]), see batches.sample_tuple
SAMPLE_CHARS = 500   # rejected samples keep this much text


def reject(line: Line, reason: str, detail: str = "") -> Rejected:
    # Full text is kept (the stats need its byte length); samples are truncated when written.
    return Rejected(line.source, line.lang, line.path, line.line_no, reason, line.text, detail)


def text_size(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


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

    def drop(self, rej: Rejected) -> None:
        """The same counts as stats.dropped_counts, and a candidate sample."""
        self.count(("dropped", rej.lang, rej.source, rej.reason), rej.text)
        if rej.reason == "decontaminated":
            self.count(("decontam", rej.lang, rej.source, rej.detail), rej.text)
        self.samples[rej.reason].append(sample_tuple(rej))

    def outputs(self):
        for key, (count, size) in self.counts.items():
            counters.inc(key, count)     # live progress in the runner's UI, once per batch
            yield pvalue.TaggedOutput(COUNTS, (key, (count, size)))
        for reason, rows in self.samples.items():
            # Only the smallest `limit` of a batch can be among the smallest `limit` of all.
            yield pvalue.TaggedOutput(SAMPLES, (reason, heapq.nsmallest(self.sample_limit, rows)))


def sample_tuple(rej: Rejected) -> tuple:
    """Sorts like the samples' order key (source, path, line_no, text), then lang and detail."""
    return rej.source, rej.path, rej.line_no, rej.text, rej.lang, rej.detail
