"""Each corpus step on its own: the unit functions pipeline/steps.py declares, and the graph's
grouped transforms (exact dedup, per-language shards) through Beam's TestPipeline + assert_that."""

from __future__ import annotations

import gzip
import hashlib
import json
import unicodedata

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipeline.batches import ReadBatches
from pipeline.config import CorpusConfig, FilterConfig, MinHashConfig, ValidConfig
from pipeline.exact_dedup import ExactDedup, dedup_bucket
from pipeline.filters import filter_line
from pipeline.language_shards import LanguageShards
from pipeline.normalise import normalise_line
from pipeline.read import readable
from pipeline.records import Line, pack, unpack
from pipeline.run import build_pipeline
from pipeline.segment import split_line
from pipeline.steps import STEPS, clean, line_units
from pipeline.tally import COUNTS, SAMPLES
from pipeline.textkey import dedup_key, stable_fraction, with_dedup_key
from pipeline.valid_split import valid_share
from tests.support import MULTILINGUAL_LINES
from tests.support.pipeline import SourceEntry, read_file


def line(text, lang="yor", source="s", line_no=1, path="p"):
    return Line(source, lang, path, line_no, text)


def samples(item) -> list[tuple]:
    """A SAMPLES element (reason, [sample tuples]) as (source, line_no, reason, detail) rows."""
    reason, rows = item
    return [(source, line_no, reason, detail) for source, _, line_no, _, _, detail in rows]


def test_normalise_step_nfc_spaces_invisibles():
    nfd = unicodedata.normalize("NFD", "Ẹ kú àárọ̀")
    inputs = [
        line(f"  {nfd}\u00a0ọ̀rẹ́\u200b mi\u00ad  \r\n\r\n ", line_no=1),
        line("ልጁ፡በየቀኑ\u202fይሄዳል።", "amh", line_no=2),
        line("👩\u200d🌾 \u200dfarmer\u200c", "swa", line_no=3),
    ]
    out = [(l.line_no, l.text) for l in map(normalise_line, inputs)]
    assert out == [(1, "Ẹ kú àárọ̀ ọ̀rẹ́ mi"), (2, "ልጁ፡በየቀኑ ይሄዳል።"), (3, "👩\u200d🌾 farmer")]


def test_split_step_sentences_ethiopic_and_too_long_row24():
    amharic = "ልጁ በየቀኑ ወደ ትምህርት ቤት ይሄዳል።" * 8  # 8 sentences, no spaces between them
    huge = "ab " * 400_000  # one 1.2 MB line, no newline
    spaceless = "x" * 300
    inputs = [
        line(amharic, "amh", line_no=1),
        line(huge.strip(), line_no=2),
        line(spaceless, line_no=3),
        line("Ọmọ náà ń lọ.\nẸ kú àárọ̀.", line_no=4),
        line("", line_no=5),
    ]
    out = [unit for l in inputs for unit in split_line(l, 100, 1_000_000)]
    units = [(l.line_no, l.text) for l in out if l.reason is None]
    rejected = [(r.line_no, r.reason) for r in out if r.reason is not None]
    sentence = "ልጁ በየቀኑ ወደ ትምህርት ቤት ይሄዳል።"
    packed = " ".join([sentence] * 3)  # 3 x 28 chars + 2 spaces <= 100
    assert units == [(1, packed), (1, packed), (1, " ".join([sentence] * 2)), (4, "Ọmọ náà ń lọ."), (4, "Ẹ kú àárọ̀.")]
    assert rejected == [(2, "too_long"), (3, "too_long"), (5, "empty")]


def test_filter_step_reasons():
    cfg = FilterConfig()
    good = [line(t, lang, line_no=i) for i, (lang, ts) in enumerate(MULTILINGUAL_LINES.items()) for t in ts[:1]]
    bad = [
        line("ok then", line_no=101),
        line("The child goes to school every day and he is happy.", "amh", line_no=102),
        line("The child goes to school every day and he is happy.", "yor", line_no=103),
        line("@user @another https://t.co/xyz wow", "hau", line_no=104),
        line("12 345 678 9 10 11 12 13", "swa", line_no=105),
        line("goooooooooooal kwa timu yetu leo", "swa", line_no=106),
        line("ìyá ìyá ìyá ìyá ìyá ìyá ọmọ", line_no=107),
        line("broken \ufffd text is here", line_no=108),
    ]
    out = [filter_line(l, cfg) for l in good + bad]
    assert [l.line_no for l in out if l.reason is None] == [l.line_no for l in good]
    assert [(r.line_no, r.reason) for r in out if r.reason is not None] == [
        (101, "too_short"),
        (102, "wrong_script"),
        (103, "pivot_language"),
        (104, "urls_mentions"),
        (105, "not_letters"),
        (106, "repetitive_chars"),
        (107, "repetitive_words"),
        (108, "replacement_char"),
    ]


def test_per_line_steps_chain_in_order_and_every_drop_is_declared():
    """`clean` runs the declared per-line steps in order: a drop keeps its reason (later steps
    pass it on), a kept unit carries its dedup key, and every reason is one STEPS declares."""
    units = line_units(CorpusConfig(), index=None)
    inputs = [
        line("  Ọmọ náà ń lọ sí ilé-ìwé.\u00a0\nok\n\nẸ kú àárọ̀, ṣé dáadáa ni?  ", line_no=1),
        line(None, line_no=2)._replace(reason="decode", detail="b'\\x93'"),
        line("\u200b \u00ad", line_no=3),
    ]
    out = [unit for l in inputs for unit in clean(readable(l), units)]
    assert [(u.line_no, u.text, u.reason, u.key) for u in out] == [
        (1, "Ọmọ náà ń lọ sí ilé-ìwé.", None, "ọmọ náà ń lọ sí ilé ìwé"),
        (1, "ok", "too_short", ""),
        (1, "Ẹ kú àárọ̀, ṣé dáadáa ni?", None, dedup_key("Ẹ kú àárọ̀, ṣé dáadáa ni?")),
        (2, "b'\\x93'", "decode", ""),
        (3, "", "empty", ""),
    ]
    declared = {reason for step in STEPS for reason in step.drops}
    assert {u.reason for u in out if u.reason} <= declared
    assert [step.name for step in STEPS] == [
        "read",
        "normalise",
        "split",
        "filter",
        "decontaminate",
        "dedup_key",
        "exact_dedup",
        "near_dedup",
        "valid_split",
        "write",
    ]


def test_every_step_runs_in_a_transform_of_the_one_graph(tmp_path):
    p = beam.Pipeline()
    build_pipeline(p, CorpusConfig(), [(SourceEntry("s", "yor", "s.txt"), "s.txt")], str(tmp_path))
    assert {step.runs_in for step in STEPS} <= p.applied_labels


def _buckets(lines: list[Line]) -> list[tuple[int, bytes]]:
    """Each line keyed and packed alone into its exact-dedup bucket, as the cleaning step emits them."""
    return [(dedup_bucket(l.key), pack([l])) for l in map(with_dedup_key, lines)]


def test_exact_dedup_keeps_smallest_copy_whatever_the_order():
    copies = [
        line("Ọmọ náà ń lọ sí ilé-ìwé.", source="b", line_no=3),
        line("ỌMỌ NÁÀ  ń lọ sí ilé-ìwé!", source="a", line_no=9),
        line(unicodedata.normalize("NFD", "ọmọ náà ń lọ sí ilé ìwé"), source="a", line_no=7),
    ]
    tone = line("Ọkọ̀ náà ń lọ sí ilé-ìwé.", source="c", line_no=1)  # ọkọ̀ (boat) != ọmọ: kept
    for order in (copies + [tone], list(reversed(copies)) + [tone]):
        with TestPipeline() as p:
            out = p | beam.Create(_buckets(order)) | ExactDedup(200)
            assert_that(
                out["unique"] | beam.FlatMap(unpack) | beam.Map(lambda l: (l.source, l.line_no)),
                equal_to([("a", 7), ("c", 1)]),
                label="unique",
            )
            assert_that(
                out[SAMPLES] | beam.FlatMap(samples),
                equal_to([("a", 9, "exact_dup", "a:7"), ("b", 3, "exact_dup", "a:7")]),
                label="dups",
            )
            assert_that(
                out[COUNTS],
                equal_to(
                    [
                        (("dropped", "yor", "a", "exact_dup"), (1, len(copies[1].text.encode()))),
                        (("dropped", "yor", "b", "exact_dup"), (1, len(copies[0].text.encode()))),
                    ]
                ),
                label="counts",
            )


def _shard_texts(staging) -> dict:
    """{(lang, shard file): [texts in file order]}"""
    return {
        (f.parent.name, f.name): [json.loads(x)["text"] for x in gzip.open(f, "rt", encoding="utf-8")]
        for f in sorted(staging.rglob("*.jsonl.gz"))
    }


def _packed(lines: list[Line], parts: int = 2) -> list[bytes]:
    """Unique lines (keyed) in `parts` packed batches, as exact dedup emits them."""
    keyed = [with_dedup_key(l) for l in lines]
    return [pack(keyed[i::parts]) for i in range(parts) if keyed[i::parts]]


def test_near_dedup_within_language_only(tmp_path):
    base = "Bàbá mi ti lọ sí oko láti ṣiṣẹ́ ní àárọ̀ yìí, ó sì máa padà wá ní alẹ́ lónìí"
    near = base + " gan"  # one word more: Jaccard ~0.95
    other = "Ìyá mi ń se oúnjẹ ní ilé ìdáná fún gbogbo ẹbí wa ní ọjọ́ Àìkú tó ń bọ̀"
    inputs = [
        line(near, line_no=2),
        line(base, line_no=5),
        line(other, line_no=3),
        line(base + " gan", "ibo", line_no=1),
    ]  # same text, other language: kept
    no_valid = ValidConfig(fraction=0.0, min_lines=0)
    with TestPipeline() as p:
        out = p | beam.Create(_packed(inputs)) | LanguageShards(str(tmp_path), 1, MinHashConfig(), no_valid, 200)
        assert_that(out[SAMPLES] | beam.FlatMap(samples), equal_to([("s", 5, "near_dup", "s:2")]), label="near")
        assert_that(
            out[COUNTS],
            equal_to(
                [
                    (("kept", "yor", "s", "train"), (2, len((near + other).encode()))),
                    (("kept", "ibo", "s", "train"), (1, len(near.encode()))),
                    (("dropped", "yor", "s", "near_dup"), (1, len(base.encode()))),
                ]
            ),
            label="counts",
        )
    assert _shard_texts(tmp_path) == {
        ("yor", "train-00000.jsonl.gz"): [near, other],
        ("ibo", "train-00000.jsonl.gz"): [near],
    }


def test_valid_split_is_fixed_by_text_and_bounded(tmp_path):
    cfg = ValidConfig(fraction=0.1, min_lines=2, max_lines=5, max_share=0.5)
    assert valid_share(200, cfg) == 5 / 200 and valid_share(10, cfg) == 2 / 10 and valid_share(3, cfg) == 0.5
    lines = [line(f"Gbólóhùn kẹta {i} ni èyí", line_no=i) for i in range(200)]
    with TestPipeline() as p:
        p | beam.Create(_packed(lines)) | LanguageShards(str(tmp_path), 1, MinHashConfig(enabled=False), cfg, 200)
    expected = sorted(l.text for l in lines if stable_fraction(dedup_key(l.text)) < 5 / 200)
    assert sorted(_shard_texts(tmp_path)[("yor", "valid-00000.jsonl.gz")]) == expected
    assert 0 < len(expected) < 20


def _hashes_of_files(staging):
    """The shard infos' sha256 (what the manifest records) are those of the files written."""

    def check(infos):
        files = {
            str(f.relative_to(staging)): hashlib.sha256(f.read_bytes()).hexdigest() for f in staging.rglob("*.jsonl.gz")
        }
        assert {info["path"]: info["sha256"] for info in infos} == files

    return check


def test_language_shards_sorted_byte_identical_and_hashed_once_written(tmp_path):
    lines = [line(t, lang, line_no=i) for i, (lang, ts) in enumerate(MULTILINGUAL_LINES.items()) for t in ts]
    digests = []
    for run, order in enumerate((lines, list(reversed(lines)))):
        staging = tmp_path / f"run{run}"
        with TestPipeline() as p:
            out = (
                p
                | beam.Create(_packed(order, parts=3))
                | LanguageShards(str(staging), 2, MinHashConfig(), ValidConfig(fraction=0.0), 200)
            )
            assert_that(
                out["shards"] | beam.Map(lambda d: d["lang"]) | beam.Distinct(),
                equal_to(sorted(MULTILINGUAL_LINES)),
                label="langs",
            )
            assert_that(out["shards"], _hashes_of_files(staging), label="hashes")
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
        read = p | beam.Create([(entry, str(src))]) | beam.ParDo(ReadBatches(read_file)) | beam.FlatMap(unpack)
        assert_that(
            read
            | "Kept" >> beam.Filter(lambda l: l.reason is None)
            | "KeptRows" >> beam.Map(lambda l: (l.line_no, l.text)),
            equal_to([(1, "Ẹ kú àárọ̀ o"), (3, "Ọmọ náà ń lọ")]),
            label="lines",
        )
        assert_that(
            read
            | "Dropped" >> beam.Filter(lambda l: l.reason is not None)
            | "DroppedRows" >> beam.Map(lambda l: (l.line_no, l.reason, "\\x93quoted" in l.text)),
            equal_to([(2, "decode", True)]),
            label="rej",
        )
        assert_that(read | beam.combiners.Count.Globally(), equal_to([3]), label="raw")
