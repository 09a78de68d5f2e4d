"""The batched steps of the graph (read, clean, exact dedup) apply the declared steps to every line,
whatever the batching."""

from __future__ import annotations

import heapq
from collections import Counter

import apache_beam as beam
import pytest

from common.config import load_config
from pipeline.batches import CleanBatch, ReadBatches, SmallestSamples
from pipeline.config import DEFAULT_CONFIG, CorpusConfig
from pipeline.decontam import EvalIndex, plan_sources
from pipeline.exact_dedup import DedupBucket, dedup_bucket
from pipeline.read import readable
from pipeline.records import Line, pack, unpack
from pipeline.run import expand_tasks
from pipeline.steps import clean, line_units
from pipeline.tally import COUNTS, SAMPLES
from pipeline.textkey import dedup_key, with_dedup_key
from tests.support.pipeline import fake_sources, make_corpus, read_file, run_args  # noqa: F401  (fixture)

# The stage reads the stand-in catalog and reader of tests/support/pipeline.py.
pytestmark = pytest.mark.usefixtures("fake_sources")


def _config(tmp_path) -> CorpusConfig:
    data, catalog = make_corpus(tmp_path)
    overrides = [a for a in run_args(data, catalog, tmp_path / "out") if "=" in a]
    return load_config(CorpusConfig, DEFAULT_CONFIG, overrides + ["split.max_chars=60"])


def _clean_in_batches(cfg: CorpusConfig, batch_lines: int):
    """Run ReadBatches + CleanBatch as plain calls: (kept Lines, counts, dropped samples as
    (reason, source, line_no, text, detail))."""
    reader, cleaner = ReadBatches(read_file, batch_lines), CleanBatch(cfg, plan_sources(cfg).sources)
    reader.setup()
    cleaner.setup()
    kept, counts, samples = [], Counter(), []
    for task in expand_tasks(cfg):
        for packed in reader.process(task):
            assert len(unpack(packed)) <= batch_lines
            for out in cleaner.process(packed):
                if isinstance(out, beam.pvalue.TaggedOutput) and out.tag == COUNTS:
                    key, (n, size) = out.value
                    counts[key + ("n",)] += n
                    counts[key + ("bytes",)] += size
                elif isinstance(out, beam.pvalue.TaggedOutput):
                    assert out.tag == SAMPLES
                    samples += [(out.value[0], row[0], row[2], row[3], row[5]) for row in out.value[1]]
                else:
                    bucket, lines = out[0], unpack(out[1])
                    assert all(dedup_bucket(l.key) == bucket and l.key == dedup_key(l.text) for l in lines)
                    kept += lines
    return sorted(kept), counts, sorted(samples)


def _line_by_line(cfg: CorpusConfig):
    """The declared steps applied to one line at a time: (lines read, kept units, drops)."""
    index = EvalIndex.from_sources(plan_sources(cfg).sources, str(cfg.data_dir), cfg.decontam)
    units, read, kept, drops = line_units(cfg, index), 0, [], []
    for entry, path in expand_tasks(cfg):
        for line in read_file(entry, path):
            read += 1
            for unit in clean(readable(line), units):
                if unit.reason is None:
                    kept.append(unit)
                else:
                    drops.append((unit.reason, unit.source, unit.line_no, unit.text, unit.detail))
    return read, sorted(kept), sorted(drops)


def test_clean_batch_applies_the_steps_to_every_line_whatever_the_batching(tmp_path):
    cfg = _config(tmp_path)
    kept, counts, samples = _clean_in_batches(cfg, batch_lines=3)  # several batches per file
    assert _clean_in_batches(cfg, batch_lines=2000) == (kept, counts, samples)
    read, one_by_one, drops = _line_by_line(cfg)
    assert kept == one_by_one
    assert samples == drops  # every batch has < 200 drops per reason: all are samples
    assert {l.lang for l in kept} == {"yor", "hau", "amh"}
    assert {(reason, source, line_no, detail) for reason, source, line_no, _, detail in samples} >= {
        ("decode", "amh-src", 4, ""),
        ("too_short", "yor-src", 5, ""),
        ("pivot_language", "yor-src", 6, ""),
        ("wrong_script", "amh-src", 3, ""),
        ("decontaminated", "yor-src", 4, "masakhaner1"),
        ("decontaminated", "yor-src", 9, "afrisenti"),
        ("decontaminated", "yor-src", 12, "yosm"),
        ("decontaminated", "hau-src", 3, "masakhanews"),
    }
    assert sum(v for k, v in counts.items() if k[0] == "records" and k[-1] == "n") == read
    assert sum(v for k, v in counts.items() if k[0] == "read" and k[-1] == "n") == len(kept) + len(samples)
    assert sum(v for k, v in counts.items() if k[0] == "dropped" and k[-1] == "n") == len(samples)


def test_dedup_bucket_keeps_the_smallest_copy_of_each_key():
    texts = [
        "Ọmọ náà ń lọ sí ilé-ìwé.",
        "ỌMỌ NÁÀ  ń lọ sí ilé-ìwé!",
        "Ọkọ̀ náà ń lọ sí ilé-ìwé.",
        "ọmọ náà ń lọ sí ilé ìwé",
    ]
    lines = [with_dedup_key(Line(src, "yor", "p", n, t)) for n, (src, t) in enumerate(zip("bacd", texts))]
    for batches in ([pack(lines[:2]), pack(lines[2:])], [pack(lines[2:]), pack(lines[:2])]):
        outputs = list(DedupBucket(200).process((0, batches)))
        unique = [l for out in outputs if isinstance(out, bytes) for l in unpack(out)]
        sampled = [row for out in outputs if getattr(out, "tag", None) == SAMPLES for row in out.value[1]]
        counts = [out.value for out in outputs if getattr(out, "tag", None) == COUNTS]
        assert sorted(unique) == [lines[1], lines[2]]  # a (smallest source) and the other key, c
        assert sorted(sampled) == [("b", "p", 0, texts[0], "yor", "a:1"), ("d", "p", 3, texts[3], "yor", "a:1")]
        assert sorted(counts) == [
            (("dropped", "yor", "b", "exact_dup"), (1, len(texts[0].encode()))),
            (("dropped", "yor", "d", "exact_dup"), (1, len(texts[3].encode()))),
        ]


def test_a_unit_repeated_within_one_line_is_kept_once_and_its_copy_dropped():
    """Two paragraphs of one line with the same text are the same record twice: one is kept, the
    other dropped `exact_dup` (before, neither was dropped and the run's accounting failed)."""
    text = "Ọmọ náà ń lọ sí ilé-ìwé lójoojúmọ́."
    units = clean(Line("s", "yor", "p", 1, f"{text}\u2028{text}"), line_units(CorpusConfig(), None))
    assert len(units) == 2 and units[0] == units[1] and units[0].reason is None
    outputs = list(DedupBucket(200).process((0, [pack(units)])))
    assert [l.text for out in outputs if isinstance(out, bytes) for l in unpack(out)] == [text]
    assert [out.value for out in outputs if getattr(out, "tag", None) == COUNTS] == [
        (("dropped", "yor", "s", "exact_dup"), (1, len(text.encode())))
    ]


def test_smallest_samples_keep_the_global_smallest_whatever_the_batching():
    rows = [("src", "p", n, f"text {n}", "yor", "") for n in range(50)]
    fn = SmallestSamples(7)
    parts = [heapq.nsmallest(7, rows[i::5]) for i in range(5)]  # per-batch pre-selection
    acc = fn.merge_accumulators([fn.add_input(fn.create_accumulator(), part) for part in parts])
    assert fn.extract_output(acc) == sorted(rows)[:7]
