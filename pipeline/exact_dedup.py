"""Step 6: exact deduplication across all sources and languages.

Lines are grouped by `textkey.dedup_key` (NFC, casefolded, punctuation removed, spaces
collapsed, tone marks kept). In each group the line with the smallest (source, path, line_no,
text) survives, so the result never depends on which worker saw which copy first; every other
copy is rejected `exact_dup` with the surviving line's source in `detail`.
"""
from __future__ import annotations

import apache_beam as beam
from apache_beam import pvalue

from pipeline.records import Line
from pipeline.steps import COUNTS, REJECTED, SAMPLES, Tally, reject
from pipeline.textkey import dedup_key


def order_key(line: Line) -> tuple:
    """The deterministic order in which copies compete (smallest wins)."""
    return (line.source, line.path, line.line_no, line.text)


def _keep_first(item):
    _, lines = item
    ordered = sorted(lines, key=order_key)
    winner = ordered[0]
    yield winner
    for line in ordered[1:]:
        yield pvalue.TaggedOutput(REJECTED, reject(line, "exact_dup", f"{winner.source}:{winner.line_no}"))


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
    """(bucket, [[(dedup key, Line tuple)]]) -> the bucket's surviving Line tuples (one list);
    tagged COUNTS and SAMPLES for the `exact_dup` rejects. Same rule as `ExactDedup`: all copies
    of a key share a bucket (batches.dedup_bucket), and `_keep_first` picks the survivor."""

    def __init__(self, sample_limit: int):
        self.sample_limit = sample_limit

    def process(self, item):
        _, batches = item
        groups: dict[str, list[Line]] = {}
        for batch in batches:
            for key, row in batch:
                groups.setdefault(key, []).append(Line(*row))
        tally, survivors = Tally(self.sample_limit), []
        for key, lines in groups.items():
            for out in _keep_first((key, lines)):
                if isinstance(out, pvalue.TaggedOutput):
                    tally.drop(out.value)
                else:
                    survivors.append(out)
        yield survivors
        yield from tally.outputs()


class ExactDedupBatches(beam.PTransform):
    """PCollection[(bucket, [(dedup key, Line tuple)])] -> lists of unique Lines; COUNTS; SAMPLES."""

    def __init__(self, sample_limit: int):
        super().__init__()
        self.sample_limit = sample_limit

    def expand(self, buckets):
        return (
            buckets
            | "GroupByBucket" >> beam.GroupByKey()
            | "KeepFirst" >> beam.ParDo(DedupBucket(self.sample_limit)).with_outputs(COUNTS, SAMPLES, main="unique")
        )
