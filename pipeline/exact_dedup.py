"""Step 7: exact deduplication across all sources and languages.

Lines are grouped by their dedup key (`textkey.dedup_key`, set by the cleaning steps: NFC,
casefolded, punctuation removed, spaces collapsed, tone marks kept). Of each key's copies the
line with the smallest (source, path, line_no, text) survives, so the result never depends on
which worker saw which copy first; every other copy is dropped `exact_dup` with the surviving
line's source and number in `detail`.

All copies of a key meet in one of `DEDUP_BUCKETS` buckets (a stable hash of the key), a few per
worker; each bucket is one element of lists of packed lines.
"""

from __future__ import annotations

import zlib
from typing import Iterable

import apache_beam as beam

from pipeline.outputs import ParDoByTag
from pipeline.records import Line, order_key, pack, unpack
from pipeline.tally import COUNTS, SAMPLES, Tally

DEDUP_BUCKETS = 16  # exact-dedup groups (by hash of the dedup key); a few per worker


def dedup_bucket(key: str) -> int:
    """Stable across processes (Python's str hash is not), so all copies meet in one bucket."""
    return zlib.crc32(key.encode("utf-8", "surrogatepass")) % DEDUP_BUCKETS


def keep_smallest(lines: Iterable[Line], best: dict[str, Line]) -> dict[str, Line]:
    """Add `lines` to `best` (dedup key -> surviving line): the smallest order_key of each key wins."""
    for line in lines:
        found = best.get(line.key)
        if found is None or order_key(line) < order_key(found):
            best[line.key] = line
    return best


def drop_copy(line: Line, winner: Line) -> Line:
    """The `exact_dup` drop of a copy that lost, naming where the surviving line is."""
    return line.drop("exact_dup", f"{winner.source}:{winner.line_no}")


class DedupBucket(beam.DoFn):
    """(bucket, [packed lines]) -> the bucket's surviving lines, packed; tagged COUNTS and
    SAMPLES for the `exact_dup` drops.

    Two passes over the packed batches: the first keeps only the best line per key, the second
    drops every other copy naming its winner. Memory grows with the bucket's distinct lines,
    not with its copies."""

    def __init__(self, sample_limit: int):
        self.sample_limit = sample_limit

    def process(self, item):
        _, packed_batches = item
        packed_batches = list(packed_batches)  # compressed; iterated twice
        best: dict[str, Line] = {}
        for packed in packed_batches:
            keep_smallest(unpack(packed), best)
        tally = Tally(self.sample_limit)
        # A unit repeated within one line ("A.\nA.") is the same record twice: all but one are copies.
        placed: set[str] = set()  # keys whose winner was met
        for packed in packed_batches:
            for line in unpack(packed):
                winner = best[line.key]
                if line == winner and line.key not in placed:
                    placed.add(line.key)
                else:
                    tally.drop(drop_copy(line, winner))
        yield pack(list(best.values()))
        yield from tally.outputs()


class ExactDedup(beam.PTransform):
    """PCollection[(bucket, packed lines)] -> {"unique": packed unique lines, COUNTS, SAMPLES}."""

    def __init__(self, sample_limit: int):
        super().__init__()
        self.sample_limit = sample_limit

    def expand(self, buckets):
        return (
            buckets
            | "GroupByBucket" >> beam.GroupByKey()
            | "KeepFirst" >> ParDoByTag(DedupBucket(self.sample_limit), (COUNTS, SAMPLES), main="unique")
        )
