"""Steps 1-6 on batches of lines (pipeline/steps.py declares the steps).

Run one element per line, Beam pays its per-element costs (coding between stages, output tags,
counters) half a million times, which made the 2-process DirectRunner slower than a plain loop.
Here one element is a batch of up to `BATCH_LINES` lines of one file:
- `ReadBatches`: (entry, path) -> lists of Lines (step 1, `read.readable`), each packed into one
  compressed bytes object (`records.pack`); the batches are reshuffled, so a 50,000-line file is
  spread over the workers instead of keeping one of them busy alone;
- `CleanBatch`: steps 2-6 (`steps.clean`) over each line of a batch; emits the surviving units
  bucketed (and packed) for exact dedup, plus per-batch sums of the stats counts and the smallest
  rejected samples per reason (`tally.Tally`, instead of one element per dropped line).
"""

from __future__ import annotations

import heapq
import logging
import time
from collections import defaultdict

import apache_beam as beam

from common import uri
from pipeline.config import CorpusConfig
from pipeline.decontam import EvalIndex
from pipeline.exact_dedup import dedup_bucket
from pipeline.read import readable
from pipeline.records import Line, pack, unpack
from pipeline.steps import clean, line_units
from pipeline.tally import SAMPLE_CHARS, Tally

log = logging.getLogger(__name__)
BATCH_LINES = 2000  # lines per element: per-element costs become negligible, batches stay small


def sample_rows(item) -> list[dict]:
    reason, rows = item
    return [
        {
            "reason": reason,
            "detail": detail,
            "source": source,
            "lang": lang,
            "path": path,
            "line_no": line_no,
            "text": text[:SAMPLE_CHARS],
        }
        for source, path, line_no, text, lang, detail in rows
    ]


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
    """(entry, path) -> packed lists of up to BATCH_LINES Lines, via `read_file(entry, path)`
    (pipeline.readers.read_file; a module-level function, pickled by reference and imported on the worker).

    Paths are recorded relative to `data_dir`, so a line's id and its place in the shard order
    are the same wherever the data folder is (a local folder, a bucket)."""

    def __init__(self, read_file, batch_lines: int = BATCH_LINES, data_dir: str = ""):
        self.read_file = read_file
        self.batch_lines = batch_lines
        self.data_dir = str(data_dir)

    def process(self, task):
        entry, path = task
        batch, read_from, where = [], None, None
        for line in self.read_file(entry, path):
            if line.path != read_from:  # the file's path, or one per archive member
                read_from, where = line.path, uri.below(line.path, self.data_dir) if self.data_dir else line.path
            batch.append(readable(line._replace(path=where)))
            if len(batch) == self.batch_lines:
                yield pack(batch)
                batch = []
        if batch:
            yield pack(batch)


class CleanBatch(beam.DoFn):
    """packed Lines -> (bucket, packed kept units) per exact-dedup bucket; tagged COUNTS
    ((key, (count, bytes)) summed over the batch) and SAMPLES ((reason, [sample tuples]))."""

    def __init__(self, cfg: CorpusConfig, eval_sources: list[tuple] = ()):
        """`eval_sources`: the (task, lang, split) of decontam.plan_sources; none = no decontamination."""
        self.cfg = cfg
        self.eval_sources = list(eval_sources)
        self.units = None

    def setup(self):
        cfg = self.cfg
        index = (
            cached_eval_index(self.eval_sources, str(cfg.data_dir), cfg.decontam)
            if cfg.decontam.enabled and self.eval_sources
            else None
        )
        self.units = line_units(cfg, index)

    def process(self, packed):
        tally = Tally(self.cfg.rejected_samples)
        buckets: dict[int, list[Line]] = defaultdict(list)
        for line in unpack(packed):
            tally.count(("records", line.lang, line.source), line.text)
            for unit in clean(line, self.units):
                tally.count(("read", unit.lang, unit.source), unit.text)
                if unit.reason is None:
                    buckets[dedup_bucket(unit.key)].append(unit)
                else:
                    tally.drop(unit)
        for bucket, lines in buckets.items():
            yield bucket, pack(lines)
        yield from tally.outputs()
