"""Step 5: drop every line that overlaps a dev/test item of an evaluation set.

Method (the one the data README used to measure the leak, so our numbers are comparable):
tokens are letters-and-digits runs of the NFC, casefolded text (combining marks kept; see
textkey.py), so spacing, case, punctuation and NFC/NFD differences do not hide a match.
- An item of >= `ngram` (8) words contributes all its word 8-grams; a corpus line sharing any of
  them is dropped. 8 words is long enough that a shared 8-gram is almost never chance
  (names and formulae are shorter) and short enough to catch a test sentence embedded in a
  longer paragraph or cut by a different sentence splitter.
- An item of `min_item_words` (5) to 7 words is matched whole: the line is dropped if it
  contains the item's word sequence.
- Items under 5 words ("Ẹ kú àárọ̀", a one-word tweet) are ignored: they occur in ordinary
  text by chance and removing every line containing them would gut the corpus.
Train splits are kept unless `decontam.keep_train` is false.

The index maps Python hashes of token tuples to the eval set's name; it is built once per
worker in `DoFn.setup()` (hashes are per-process, so the index never leaves the worker).
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.metrics import Metrics

from pipeline.config import DecontamConfig
from pipeline.eval_sets import iter_eval_items
from pipeline.records import Line
from pipeline.steps import REJECTED, reject
from pipeline.textkey import word_tokens

log = logging.getLogger(__name__)


class EvalIndex:
    """Hashed word n-grams (and whole short items) of evaluation text -> eval set name."""

    def __init__(self, ngram: int = 8, min_item_words: int = 5):
        self.ngram = ngram
        self.min_item_words = min_item_words
        self.hashes: dict[int, str] = {}
        self.lengths: set[int] = set()   # window lengths present in the index
        self.items = 0
        self.ignored_short = 0

    def add(self, text: str, eval_set: str) -> None:
        tokens = word_tokens(text)
        if len(tokens) < self.min_item_words:
            self.ignored_short += 1
            return
        self.items += 1
        n = min(len(tokens), self.ngram)
        self.lengths.add(n)
        for i in range(len(tokens) - n + 1):
            self.hashes.setdefault(hash(tuple(tokens[i:i + n])), eval_set)

    def match(self, text: str) -> str | None:
        """The eval set `text` overlaps, or None."""
        tokens = word_tokens(text)
        hashes = self.hashes
        for n in self.lengths:
            for i in range(len(tokens) - n + 1):
                found = hashes.get(hash(tuple(tokens[i:i + n])))
                if found is not None:
                    return found
        return None

    @classmethod
    def from_eval_dir(cls, eval_dir: str | Path, cfg: DecontamConfig) -> "EvalIndex":
        splits = list(cfg.splits) + ([] if cfg.keep_train else ["train"])
        index = cls(cfg.ngram, cfg.min_item_words)
        for item in iter_eval_items(eval_dir, list(cfg.sets), splits):
            index.add(item.text, item.eval_set)
        return index


class Decontaminate(beam.DoFn):
    """Line -> Line, or a tagged Rejected `decontaminated` whose detail names the eval set."""

    def __init__(self, eval_dir: str, cfg: DecontamConfig):
        self.eval_dir = str(eval_dir)
        self.cfg = cfg
        self.index: EvalIndex | None = None
        self.dropped = Metrics.counter("decontam", "dropped")

    def setup(self):
        start = time.time()
        self.index = EvalIndex.from_eval_dir(self.eval_dir, self.cfg)
        log.info("decontam: indexed %d eval items (%d n-grams, %d short items ignored) in %.1fs",
                 self.index.items, len(self.index.hashes), self.index.ignored_short, time.time() - start)

    def process(self, line: Line):
        eval_set = self.index.match(line.text)
        if eval_set is None:
            yield line
        else:
            self.dropped.inc()
            yield pvalue.TaggedOutput(REJECTED, reject(line, "decontaminated", eval_set))
