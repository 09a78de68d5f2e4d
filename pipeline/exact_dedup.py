"""Step 6: exact deduplication across all sources and languages.

Lines are grouped by `textkey.dedup_key` (NFC, casefolded, punctuation removed, spaces
collapsed, tone marks kept). In each group the line with the smallest (source, path, line_no,
text) survives, so the result never depends on which worker saw which copy first; every other
copy is rejected `exact_dup` with the surviving line's source in `detail`.
"""
from __future__ import annotations

import apache_beam as beam
from apache_beam import pvalue

from pipeline.batches import unpack_rows
from pipeline.outputs import ParDoByTag
from pipeline.records import Line
from pipeline.steps import COUNTS, REJECTED, SAMPLES, Tally, reject
from pipeline.textkey import dedup_key


def order_key(line: Line) -> tuple:
    """The deterministic order in which copies compete (smallest wins)."""
    return (line.source, line.path, line.line_no, line.text)


def reject_copy(line: Line, winner: Line):
    """The `exact_dup` reject of a copy that lost, naming where the surviving line is."""
    return reject(line, "exact_dup", f"{winner.source}:{winner.line_no}")


def _keep_first(item):
    _, lines = item
    ordered = sorted(lines, key=order_key)
    winner = ordered[0]
    yield winner
    for line in ordered[1:]:
        yield pvalue.TaggedOutput(REJECTED, reject_copy(line, winner))


class ExactDedup(beam.PTransform):
    """PCollection[Line] -> tagged outputs main (unique Lines) and `rejected`."""

    def expand(self, lines):
        return (
            lines
            | "KeyByText" >> beam.Map(lambda line: (dedup_key(line.text), line))
            | "GroupByText" >> beam.GroupByKey()
            | "KeepFirst" >> beam.FlatMap(_keep_first).with_outputs(REJECTED, main="unique")
        )


class DedupBucket(beam.DoFn):
    """(bucket, [packed [(dedup key, Line tuple)]]) -> the bucket's surviving Lines (one list);
    tagged COUNTS and SAMPLES for the `exact_dup` rejects. Same rule as `ExactDedup`: all copies
    of a key share a bucket (batches.dedup_bucket), and the smallest `order_key` survives.

    Two passes over the packed batches: the first keeps only the best line per key, the second
    rejects every other copy naming its winner. Memory grows with the bucket's distinct lines,
    not with its copies."""

    def __init__(self, sample_limit: int):
        self.sample_limit = sample_limit

    def process(self, item):
        _, packed_batches = item
        packed_batches = list(packed_batches)  # compressed; iterated twice
        best: dict[str, Line] = {}
        for packed in packed_batches:
            for key, row in unpack_rows(packed):
                line = Line(*row)
                if key not in best or order_key(line) < order_key(best[key]):
                    best[key] = line
        tally = Tally(self.sample_limit)
        for packed in packed_batches:
            for key, row in unpack_rows(packed):
                line, winner = Line(*row), best[key]
                if line != winner:
                    tally.drop(reject_copy(line, winner))
        yield list(best.values())
        yield from tally.outputs()


class ExactDedupBatches(beam.PTransform):
    """PCollection[(bucket, packed [(dedup key, Line tuple)])] -> {"unique": lists of unique Lines,
    COUNTS, SAMPLES}."""

    def __init__(self, sample_limit: int):
        super().__init__()
        self.sample_limit = sample_limit

    def expand(self, buckets):
        return (
            buckets
            | "GroupByBucket" >> beam.GroupByKey()
            | "KeepFirst" >> ParDoByTag(DedupBucket(self.sample_limit), (COUNTS, SAMPLES), main="unique")
        )
