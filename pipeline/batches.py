"""Steps 1-5 on batches of lines: what the full pipeline runs.

Each step keeps its own module, its pure per-line function and its per-line DoFn (tested one by
one in tests/test_pipeline_steps.py). Run one element per line, though, Beam pays its per-element
costs (coding between stages, output tags, counters) half a million times, which made the
2-process DirectRunner slower than a plain loop. Here one element is a batch of up to
`BATCH_LINES` lines of one file:
- `ReadBatches`: (entry, path) -> lists of RawLine tuples (tuples code far faster than
  dataclasses), each packed into one compressed bytes object (`pack_rows`); the batches are
  reshuffled, so a 50,000-line file is spread over the workers instead of keeping one of them
  busy alone;
- `CleanBatch`: maps read.to_line, normalise.normalise_text, segment.split_line,
  filters.check_text and decontam's EvalIndex.match over a batch, in that order, and emits the
  surviving units bucketed (and packed) for exact dedup, plus per-batch sums of the stats counts and the
  smallest rejected samples per reason (instead of one element per rejected line).
Outputs are the same as the per-line steps' (tests/test_pipeline_batches.py checks that).
"""
from __future__ import annotations

import heapq
import logging
import pickle
import time
import zlib
from collections import defaultdict

import apache_beam as beam

from common import uri
from pipeline.config import CorpusConfig
from pipeline.decontam import EvalIndex
from pipeline.filters import check_text
from pipeline.normalise import normalise_text
from pipeline.read import to_line
from pipeline.records import Line, RawLine, Rejected
from pipeline.segment import split_line
from pipeline.steps import SAMPLE_CHARS, Tally, reject
from pipeline.textkey import dedup_key

log = logging.getLogger(__name__)
BATCH_LINES = 2000     # lines per element: per-element costs become negligible, batches stay small
DEDUP_BUCKETS = 16     # exact-dedup groups (by hash of the dedup key); a few per worker


def pack_rows(rows: list) -> bytes:
    """A batch as one compressed bytes object, for the steps before exact dedup.

    Beam's local runners keep every element of a shuffle (a Reshuffle, a GroupByKey) in the
    runner process, decoded: one small bytes object per batch there instead of thousands of
    tuples keeps that memory to about the compressed size of the text (README, "Running at scale").
    """
    return zlib.compress(pickle.dumps(rows, protocol=pickle.HIGHEST_PROTOCOL), 1)


def unpack_rows(packed: bytes) -> list:
    return pickle.loads(zlib.decompress(packed))


def line_tuple(line: Line) -> tuple:
    return line.source, line.lang, line.path, line.line_no, line.text


def dedup_bucket(key: str) -> int:
    """Stable across processes (Python's str hash is not), so all copies meet in one bucket."""
    return zlib.crc32(key.encode("utf-8", "surrogatepass")) % DEDUP_BUCKETS


def sample_rows(item) -> list[dict]:
    reason, rows = item
    return [{"reason": reason, "detail": detail, "source": source, "lang": lang, "path": path,
             "line_no": line_no, "text": text[:SAMPLE_CHARS]}
            for source, path, line_no, text, lang, detail in rows]


class SmallestSamples(beam.CombineFn):
    """(reason, [sample tuples]) per batch -> the `limit` smallest per reason."""

    def __init__(self, limit: int):
        self.limit = limit

    def create_accumulator(self):
        return []

    def add_input(self, acc, rows):
        return heapq.nsmallest(self.limit, acc + list(rows))

    def merge_accumulators(self, accs):
        return heapq.nsmallest(self.limit, [row for acc in accs for row in acc])

    def extract_output(self, acc):
        return acc


_EVAL_INDEX: dict[str, EvalIndex] = {}


def cached_eval_index(eval_sources: list[tuple], data_dir: str, decontam) -> EvalIndex:
    """The evaluation index, built once per process. Beam's DaskRunner calls `setup` for every
    partition (one a file), and building the full index takes about a minute; only the last
    index is kept, so a process holds one whatever the runs before it."""
    key = repr((eval_sources, data_dir, decontam))
    if key not in _EVAL_INDEX:
        _EVAL_INDEX.clear()
        start = time.time()
        _EVAL_INDEX[key] = EvalIndex.from_sources(eval_sources, data_dir, decontam)
        log.info("decontam: indexed %s in %.1fs", _EVAL_INDEX[key].describe(), time.time() - start)
    return _EVAL_INDEX[key]


class ReadBatches(beam.DoFn):
    """(entry, path) -> packed lists of up to BATCH_LINES RawLine tuples, via `read_file(entry, path)`
    (pipeline.readers.read_file; a module-level function, pickled by reference and imported on the worker).

    Paths are recorded relative to `data_dir`, so a line's id and its place in the shard order
    are the same wherever the data folder is (a local folder, a bucket)."""

    def __init__(self, read_file, batch_lines: int = BATCH_LINES, data_dir: str = ""):
        self.read_file = read_file
        self.batch_lines = batch_lines
        self.data_dir = str(data_dir)

    def process(self, task):
        entry, path = task
        batch = []
        for raw in self.read_file(entry, path):
            where = uri.below(raw.path, self.data_dir) if self.data_dir else raw.path
            batch.append((raw.source, raw.lang, where, raw.line_no, raw.text, raw.reason, raw.raw))
            if len(batch) == self.batch_lines:
                yield pack_rows(batch)
                batch = []
        if batch:
            yield pack_rows(batch)


class CleanBatch(beam.DoFn):
    """packed [RawLine tuple] -> (bucket, packed [(dedup key, Line tuple)]) per exact-dedup bucket; tagged
    COUNTS ((key, (count, bytes)) summed over the batch) and SAMPLES ((reason, [sample tuples]))."""

    def __init__(self, cfg: CorpusConfig, eval_sources: list[tuple] = ()):
        """`eval_sources`: the (task, lang, split) of decontam.plan_sources; none = no decontamination."""
        self.split, self.filter, self.decontam = cfg.split, cfg.filter, cfg.decontam
        self.data_dir = str(cfg.data_dir)
        self.eval_sources = list(eval_sources)
        self.sample_limit = cfg.rejected_samples
        self.index: EvalIndex | None = None

    def setup(self):
        if self.decontam.enabled and self.eval_sources:
            self.index = cached_eval_index(self.eval_sources, self.data_dir, self.decontam)

    def process(self, packed):
        tally = Tally(self.sample_limit)
        buckets: dict[int, list] = defaultdict(list)
        for row in unpack_rows(packed):
            raw = RawLine(*row)
            tally.count(("records", raw.lang, raw.source), raw.text if raw.text is not None else (raw.raw or ""))
            for unit in self.units(raw, tally):
                key = dedup_key(unit.text)
                buckets[dedup_bucket(key)].append((key, line_tuple(unit)))
        for bucket, rows in buckets.items():
            yield bucket, pack_rows(rows)
        yield from tally.outputs()

    def units(self, raw: RawLine, tally: Tally):
        """Steps 1-5 for one RawLine: its clean units; every unit read and every drop is tallied."""
        line = to_line(raw)
        if isinstance(line, Rejected):
            tally.count(("read", line.lang, line.source), line.text)
            tally.drop(line)
            return
        line = line.with_text(normalise_text(line.text))
        for unit in split_line(line, self.split.max_chars, self.split.reject_chars):
            tally.count(("read", unit.lang, unit.source), unit.text)
            if isinstance(unit, Rejected):
                tally.drop(unit)
                continue
            reason = check_text(unit.text, unit.lang, self.filter)
            if reason is not None:
                tally.drop(reject(unit, reason))
                continue
            eval_set = self.index.match(unit.text) if self.index is not None else None
            if eval_set is not None:
                tally.drop(reject(unit, "decontaminated", eval_set))
                continue
            yield unit
