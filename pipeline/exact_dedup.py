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
from pipeline.steps import REJECTED, reject
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
