"""The batched steps the full pipeline runs give exactly what the per-line steps give."""
from __future__ import annotations

import heapq
from collections import Counter

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from common.config import load_config
from pipeline.batches import CleanBatch, ReadBatches, SmallestSamples, dedup_bucket, pack_rows, unpack_rows
from pipeline.config import DEFAULT_CONFIG, CorpusConfig
from pipeline.decontam import Decontaminate, plan_sources
from pipeline.exact_dedup import DedupBucket, ExactDedup
from pipeline.filters import FilterLines
from pipeline.normalise import NormaliseText
from pipeline.read import ReadSources
from pipeline.records import Line
from pipeline.run import expand_tasks
from pipeline.segment import SplitUnits
from pipeline.steps import COUNTS, REJECTED, SAMPLES
from pipeline.textkey import dedup_key
from tests.support.pipeline import fake_sources, make_corpus, read_file, run_args  # noqa: F401  (fixture)

# The stage reads the stand-in catalog and reader of tests/support/pipeline.py.
pytestmark = pytest.mark.usefixtures("fake_sources")


def _config(tmp_path) -> CorpusConfig:
    data, catalog = make_corpus(tmp_path)
    overrides = [a for a in run_args(data, catalog, tmp_path / "out") if "=" in a]
    return load_config(CorpusConfig, DEFAULT_CONFIG, overrides + ["split.max_chars=60"])


def _clean_in_batches(cfg: CorpusConfig, batch_lines: int):
    """Run ReadBatches + CleanBatch as plain calls: (kept Line tuples, counts, rejected samples)."""
    reader, clean = ReadBatches(read_file, batch_lines), CleanBatch(cfg, plan_sources(cfg).sources)
    reader.setup()
    clean.setup()
    kept, counts, samples = [], Counter(), []
    for task in expand_tasks(cfg):
        for packed in reader.process(task):
            assert len(unpack_rows(packed)) <= batch_lines
            for out in clean.process(packed):
                if isinstance(out, beam.pvalue.TaggedOutput) and out.tag == COUNTS:
                    key, (n, size) = out.value
                    counts[key + ("n",)] += n
                    counts[key + ("bytes",)] += size
                elif isinstance(out, beam.pvalue.TaggedOutput):
                    assert out.tag == SAMPLES
                    samples += [(out.value[0], row[0], row[2], row[3], row[5]) for row in out.value[1]]
                else:
                    bucket, rows = out[0], unpack_rows(out[1])
                    assert all(dedup_bucket(key) == bucket and key == dedup_key(row[4]) for key, row in rows)
                    kept += [row for _, row in rows]
    return kept, counts, samples


def test_clean_batch_equals_per_line_steps(tmp_path):
    cfg = _config(tmp_path)
    kept, counts, samples = _clean_in_batches(cfg, batch_lines=3)      # several batches per file
    assert {row[1] for row in kept} == {"yor", "hau", "amh"}
    reasons = Counter(s[0] for s in samples)
    assert {"decode", "decontaminated", "too_short"} <= set(reasons)
    with TestPipeline() as p:        # the same steps, one element per line
        raw, lines, read_rej = p | ReadSources(expand_tasks(cfg), read_file)
        units = (lines | beam.ParDo(NormaliseText())
                 | beam.ParDo(SplitUnits(cfg.split.max_chars, cfg.split.reject_chars)).with_outputs(REJECTED, main="ok"))
        filtered = units.ok | beam.ParDo(FilterLines(cfg.filter)).with_outputs(REJECTED, main="ok")
        decon = filtered.ok | beam.ParDo(Decontaminate(plan_sources(cfg).sources, str(cfg.data_dir), cfg.decontam)).with_outputs(REJECTED, main="ok")
        assert_that(decon.ok | beam.Map(lambda l: (l.source, l.lang, l.path, l.line_no, l.text)),
                    equal_to(kept), label="kept")
        rejected = (read_rej, units[REJECTED], filtered[REJECTED], decon[REJECTED]) | beam.Flatten()
        assert_that(rejected | beam.Map(lambda r: (r.reason, r.source, r.line_no, r.text, r.detail)),
                    equal_to(samples), label="rejected")   # every batch has < 200 rejects per reason
        assert_that(raw | beam.combiners.Count.Globally(),
                    equal_to([sum(v for k, v in counts.items() if k[0] == "records" and k[-1] == "n")]), label="n")


def test_dedup_bucket_equals_exact_dedup():
    texts = ["Ọmọ náà ń lọ sí ilé-ìwé.", "ỌMỌ NÁÀ  ń lọ sí ilé-ìwé!", "Ọkọ̀ náà ń lọ sí ilé-ìwé.", "ọmọ náà ń lọ sí ilé ìwé"]
    lines = [Line(src, "yor", "p", n, t) for n, (src, t) in enumerate(zip("bacd", texts))]
    batches = [pack_rows([(dedup_key(l.text), (l.source, l.lang, l.path, l.line_no, l.text)) for l in part])
               for part in (lines[:2], lines[2:])]
    outputs = list(DedupBucket(200).process((0, batches)))
    unique = [l for out in outputs if isinstance(out, list) for l in out]
    sampled = [row for out in outputs if getattr(out, "tag", None) == SAMPLES for row in out.value[1]]
    with TestPipeline() as p:
        ref = p | beam.Create(lines) | ExactDedup()
        assert_that(ref.unique, equal_to(unique), label="unique")
        assert_that(ref[REJECTED] | beam.Map(lambda r: (r.source, r.path, r.line_no, r.text, r.lang, r.detail)),
                    equal_to(sampled), label="dups")


def test_smallest_samples_keep_the_global_smallest_whatever_the_batching():
    rows = [("src", "p", n, f"text {n}", "yor", "") for n in range(50)]
    fn = SmallestSamples(7)
    parts = [heapq.nsmallest(7, rows[i::5]) for i in range(5)]     # per-batch pre-selection
    acc = fn.merge_accumulators([fn.add_input(fn.create_accumulator(), part) for part in parts])
    assert fn.extract_output(acc) == sorted(rows)[:7]
