"""Each corpus step on its own, through Beam's TestPipeline + assert_that."""
from __future__ import annotations

import gzip
import json
import unicodedata

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipeline.config import FilterConfig, MinHashConfig, ValidConfig
from pipeline.exact_dedup import ExactDedup
from pipeline.filters import FilterLines
from pipeline.language_shards import KEPT, LanguageShards
from pipeline.normalise import NormaliseText
from pipeline.read import ReadSources
from pipeline.records import Line
from pipeline.segment import SplitUnits
from pipeline.steps import REJECTED
from pipeline.textkey import dedup_key, stable_fraction
from pipeline.valid_split import valid_share
from tests.support import MULTILINGUAL_LINES
from tests.support.pipeline import SourceEntry, read_file


def line(text, lang="yor", source="s", line_no=1, path="p"):
    return Line(source, lang, path, line_no, text)


def test_normalise_step_nfc_spaces_invisibles():
    nfd = unicodedata.normalize("NFD", "Ẹ kú àárọ̀")
    inputs = [line(f"  {nfd}\u00a0ọ̀rẹ́\u200b mi\u00ad  \r\n\r\n ", line_no=1),
              line("ልጁ፡በየቀኑ\u202fይሄዳል።", "amh", line_no=2),
              line("👩\u200d🌾 \u200dfarmer\u200c", "swa", line_no=3)]
    with TestPipeline() as p:
        out = p | beam.Create(inputs) | beam.ParDo(NormaliseText()) | beam.Map(lambda l: (l.line_no, l.text))
        assert_that(out, equal_to([(1, "Ẹ kú àárọ̀ ọ̀rẹ́ mi"), (2, "ልጁ፡በየቀኑ ይሄዳል።"), (3, "👩\u200d🌾 farmer")]))


def test_split_step_sentences_ethiopic_and_too_long_row24():
    amharic = "ልጁ በየቀኑ ወደ ትምህርት ቤት ይሄዳል።" * 8            # 8 sentences, no spaces between them
    huge = "ab " * 400_000                                          # one 1.2 MB line, no newline
    spaceless = "x" * 300
    inputs = [line(amharic, "amh", line_no=1), line(huge.strip(), line_no=2), line(spaceless, line_no=3),
              line("Ọmọ náà ń lọ.\nẸ kú àárọ̀.", line_no=4), line("", line_no=5)]
    with TestPipeline() as p:
        out = p | beam.Create(inputs) | beam.ParDo(SplitUnits(100, 1_000_000)).with_outputs(REJECTED, main="units")
        units = out.units | "Units" >> beam.Map(lambda l: (l.line_no, l.text))
        rej = out[REJECTED] | "Rej" >> beam.Map(lambda r: (r.line_no, r.reason))
        sentence = "ልጁ በየቀኑ ወደ ትምህርት ቤት ይሄዳል።"
        packed = " ".join([sentence] * 3)                          # 3 x 28 chars + 2 spaces <= 100
        assert_that(units, equal_to([(1, packed), (1, packed), (1, " ".join([sentence] * 2)),
                                     (4, "Ọmọ náà ń lọ."), (4, "Ẹ kú àárọ̀.")]), label="units")
        assert_that(rej, equal_to([(2, "too_long"), (3, "too_long"), (5, "empty")]), label="rejected")


def test_filter_step_reasons():
    cfg = FilterConfig()
    good = [line(t, lang, line_no=i) for i, (lang, ts) in enumerate(MULTILINGUAL_LINES.items()) for t in ts[:1]]
    bad = [line("ok then", line_no=101),
           line("The child goes to school every day and he is happy.", "amh", line_no=102),
           line("The child goes to school every day and he is happy.", "yor", line_no=103),
           line("@user @another https://t.co/xyz wow", "hau", line_no=104),
           line("12 345 678 9 10 11 12 13", "swa", line_no=105),
           line("goooooooooooal kwa timu yetu leo", "swa", line_no=106),
           line("ìyá ìyá ìyá ìyá ìyá ìyá ọmọ", line_no=107),
           line("broken \ufffd text is here", line_no=108)]
    with TestPipeline() as p:
        out = p | beam.Create(good + bad) | beam.ParDo(FilterLines(cfg)).with_outputs(REJECTED, main="ok")
        assert_that(out.ok | beam.Map(lambda l: l.line_no), equal_to([l.line_no for l in good]), label="kept")
        assert_that(out[REJECTED] | beam.Map(lambda r: (r.line_no, r.reason)), equal_to([
            (101, "too_short"), (102, "wrong_script"), (103, "pivot_language"), (104, "urls_mentions"),
            (105, "not_letters"), (106, "repetitive_chars"), (107, "repetitive_words"),
            (108, "replacement_char")]), label="rejected")


def test_exact_dedup_keeps_smallest_copy_whatever_the_order():
    copies = [line("Ọmọ náà ń lọ sí ilé-ìwé.", source="b", line_no=3),
              line("ỌMỌ NÁÀ  ń lọ sí ilé-ìwé!", source="a", line_no=9),
              line(unicodedata.normalize("NFD", "ọmọ náà ń lọ sí ilé ìwé"), source="a", line_no=7)]
    tone = line("Ọkọ̀ náà ń lọ sí ilé-ìwé.", source="c", line_no=1)   # ọkọ̀ (boat) != ọmọ: kept
    for order in (copies + [tone], list(reversed(copies)) + [tone]):
        with TestPipeline() as p:
            out = p | beam.Create(order) | ExactDedup()
            assert_that(out.unique | beam.Map(lambda l: (l.source, l.line_no)), equal_to([("a", 7), ("c", 1)]),
                        label="unique")
            assert_that(out[REJECTED] | beam.Map(lambda r: (r.source, r.line_no, r.reason, r.detail)),
                        equal_to([("a", 9, "exact_dup", "a:7"), ("b", 3, "exact_dup", "a:7")]), label="dups")


def _shard_texts(staging) -> dict:
    """{(lang, shard file): [texts in file order]}"""
    return {(f.parent.name, f.name): [json.loads(x)["text"] for x in gzip.open(f, "rt", encoding="utf-8")]
            for f in sorted(staging.rglob("*.jsonl.gz"))}


def test_near_dedup_within_language_only(tmp_path):
    base = "Bàbá mi ti lọ sí oko láti ṣiṣẹ́ ní àárọ̀ yìí, ó sì máa padà wá ní alẹ́ lónìí"
    near = base + " gan"                                    # one word more: Jaccard ~0.95
    other = "Ìyá mi ń se oúnjẹ ní ilé ìdáná fún gbogbo ẹbí wa ní ọjọ́ Àìkú tó ń bọ̀"
    inputs = [line(near, line_no=2), line(base, line_no=5), line(other, line_no=3),
              line(base + " gan", "ibo", line_no=1)]        # same text, other language: kept
    no_valid = ValidConfig(fraction=0.0, min_lines=0)
    with TestPipeline() as p:
        out = p | beam.Create(inputs) | LanguageShards(str(tmp_path), 1, MinHashConfig(), no_valid)
        assert_that(out[REJECTED] | beam.Map(lambda r: (r.line_no, r.reason, r.detail)),
                    equal_to([(5, "near_dup", "s:2")]), label="near")
        assert_that(out[KEPT], equal_to([
            (("kept", "yor", "s", "train"), (2, len((near + other).encode()))),
            (("kept", "ibo", "s", "train"), (1, len(near.encode())))]), label="counts")
    assert _shard_texts(tmp_path) == {("yor", "train-00000.jsonl.gz"): [near, other],
                                      ("ibo", "train-00000.jsonl.gz"): [near]}


def test_valid_split_is_fixed_by_text_and_bounded(tmp_path):
    cfg = ValidConfig(fraction=0.1, min_lines=2, max_lines=5, max_share=0.5)
    assert valid_share(200, cfg) == 5 / 200 and valid_share(10, cfg) == 2 / 10 and valid_share(3, cfg) == 0.5
    lines = [line(f"Gbólóhùn kẹta {i} ni èyí", line_no=i) for i in range(200)]
    with TestPipeline() as p:
        p | beam.Create(lines) | LanguageShards(str(tmp_path), 1, MinHashConfig(enabled=False), cfg)
    expected = sorted(l.text for l in lines if stable_fraction(dedup_key(l.text)) < 5 / 200)
    assert sorted(_shard_texts(tmp_path)[("yor", "valid-00000.jsonl.gz")]) == expected
    assert 0 < len(expected) < 20


def test_language_shards_sorted_and_byte_identical(tmp_path):
    lines = [line(t, lang, line_no=i) for i, (lang, ts) in enumerate(MULTILINGUAL_LINES.items()) for t in ts]
    digests = []
    for run, order in enumerate((lines, list(reversed(lines)))):
        staging = tmp_path / f"run{run}"
        with TestPipeline() as p:
            out = p | beam.Create(order) | LanguageShards(str(staging), 2, MinHashConfig(), ValidConfig(fraction=0.0))
            assert_that(out.shards | beam.Map(lambda d: d["lang"]) | beam.Distinct(),
                        equal_to(sorted(MULTILINGUAL_LINES)))
        files = sorted(staging.rglob("*.jsonl.gz"))
        digests.append({f.relative_to(staging): f.read_bytes() for f in files})
        records = [json.loads(x) for f in files for x in gzip.open(f, "rt", encoding="utf-8")]
        assert sorted(r["text"] for r in records) == sorted(l.text for l in lines)
        assert len({r["id"] for r in records}) == len(records)
    assert digests[0] == digests[1]


def test_read_step_rejects_undecodable_line_row19(tmp_path):
    src = tmp_path / "yor.txt"
    src.write_bytes("Ẹ kú àárọ̀ o\n".encode() + b"caf\xe9 \x93quoted\x94\n" + "Ọmọ náà ń lọ\n".encode())
    entry = SourceEntry("yor-test", "yor", "yor.txt")
    with TestPipeline() as p:
        raw, lines, rejected = p | ReadSources([(entry, str(src))], read_file)
        assert_that(lines | beam.Map(lambda l: (l.line_no, l.text)),
                    equal_to([(1, "Ẹ kú àárọ̀ o"), (3, "Ọmọ náà ń lọ")]), label="lines")
        assert_that(rejected | beam.Map(lambda r: (r.line_no, r.reason)), equal_to([(2, "decode")]), label="rej")
        assert_that(raw | beam.combiners.Count.Globally(), equal_to([3]), label="raw")
