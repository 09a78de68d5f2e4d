"""CoNLL and table readers on bad inputs and on the real evaluation sets."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from common.eval_sets import ReaderSpec
from common.eval_readers import BadRows, DataError, read_conll, read_table


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


def table_rows(path, spec, skip=False):
    counts, examples = Counter(), []
    rows = list(read_table(path, spec, BadRows(skip, counts, examples)))
    return rows, counts, examples


# --- CoNLL quirks ------------------------------------------------------------------------------


def test_conll_quirks_parsed_row29(tmp_path):
    text = (
        "-DOCSTART- -X- O O\n\n"
        "Ọmọ\tO\n"  # tab
        "Adébáyọ̀   B-PER  \n"  # several spaces, trailing spaces
        "lọ \t O\r\n"  # tab and spaces mixed, CRLF
        " \t \n"  # whitespace-only line = sentence break
        "-DOCSTART- O\n"
        "ልጁ O\n"
        " O\n"  # empty token with a label (MasakhaNER 2.0 xho)
        "Addis B-LOC\n"
        "Ababa I-LOC"
    )  # no final newline, no final blank line
    counts = Counter()
    sents = list(read_conll(write(tmp_path / "train.txt", text), counts))
    assert [s["words"] for s in sents] == [["Ọmọ", "Adébáyọ̀", "lọ"], ["ልጁ", "", "Addis", "Ababa"]]
    assert [s["labels"] for s in sents] == [["O", "B-PER", "O"], ["O", "O", "B-LOC", "I-LOC"]]
    assert [s["line"] for s in sents] == [3, 8]
    assert counts["docstart_lines"] == 2 and counts["empty_tokens"] == 1


def test_conll_one_column_line_is_an_error_with_line_row29(tmp_path):
    path = write(tmp_path / "dev.txt", "Kano B-LOC\nbirni\n\n")
    with pytest.raises(DataError, match=r"dev\.txt:2: one column 'birni'"):
        list(read_conll(path))


def test_conll_label_not_iob2_row29(tmp_path):
    path = write(tmp_path / "dev.txt", "Kano B-LOC\n\nLagos LOC\n")
    with pytest.raises(DataError, match=r"dev\.txt:3: label 'LOC' is not IOB2"):
        list(read_conll(path))


def test_real_masakhaner2_xho_train_has_two_empty_tokens(data_dir):
    counts = Counter()
    sents = list(read_conll(data_dir / "eval/masakhaner2/xho/train.txt.gz", counts))
    expected = {
        (r["lang"], r["split"]): int(r["sentences"])
        for r in csv.DictReader(open(data_dir / "eval/masakhaner2/COUNTS.tsv"), delimiter="\t")
    }
    assert len(sents) == expected[("xho", "train")]
    assert counts["empty_tokens"] == 2
    assert sum(len(s["words"]) for s in sents) == sum(1 for s in sents for w in s["words"])


# --- classification files ------------------------------------------------------------------------

SPEC = ReaderSpec(format="tsv", text_columns=["text"], label_column="label")


def test_missing_column_names_file_and_columns_row31(tmp_path):
    path = write(tmp_path / "train.tsv", "review\tsentiment\nÓ dára\tpositive\n")
    with pytest.raises(DataError, match=r"train\.tsv:1: header has no column\(s\) \['text', 'label'\]"):
        table_rows(path, SPEC)


@pytest.mark.parametrize(
    "body, line, detail",
    [
        ("Ẹ kú àárọ̀\tpositive\textra\n", 3, "3 fields, header has 2"),
        ("   \tpositive\n", 3, "empty text"),
        ('"ልጁ በየቀኑ"x\tnegative\n', 3, "malformed quoting"),
    ],
)
def test_bad_row_is_named_or_skipped_and_counted_row31(tmp_path, body, line, detail):
    text = "text\tlabel\nỌmọ náà 🙂\tpositive\n" + body + "Ina kwana\tnegative\n"
    path = write(tmp_path / "dev.tsv", text)
    with pytest.raises(DataError, match=rf"dev\.tsv:{line}.*{detail}.*skip_bad_rows"):
        table_rows(path, SPEC)
    rows, counts, examples = table_rows(path, SPEC, skip=True)
    assert [r["text"] for r in rows] == ["Ọmọ náà 🙂", "Ina kwana"]
    assert sum(v for k, v in counts.items() if k.startswith("skipped_")) == 1
    assert detail in examples[0]


def test_quoted_multiline_cell_is_one_row_row31(tmp_path):
    path = write(
        tmp_path / "test.tsv", 'category\theadline\ttext\nhealth\tÌlera\t"ọ̀rọ̀ kan\nọ̀rọ̀ méjì"\nsports\tBọ́ọ̀lù\tẸgbẹ́\n'
    )
    spec = ReaderSpec(format="tsv", text_columns=["headline", "text"], label_column="category", text_join=" | ")
    rows, _, _ = table_rows(path, spec)
    assert [(r["text"], r["label"], r["line"]) for r in rows] == [
        ("Ìlera | ọ̀rọ̀ kan\nọ̀rọ̀ méjì", "health", 2),
        ("Bọ́ọ̀lù | Ẹgbẹ́", "sports", 4),
    ]


def test_literal_quotes_with_quoting_none(tmp_path):
    path = write(tmp_path / "train.tsv", 'tweet\tlabel\nYorùbá """"..àyà\tnegative\n"ok\tpositive\n')
    rows, _, _ = table_rows(path, ReaderSpec(format="tsv", quoting="none", text_columns=["tweet"]))
    assert [r["text"] for r in rows] == ['Yorùbá """"..àyà', '"ok']


def test_jsonl_bad_line_named(tmp_path):
    path = write(tmp_path / "train.jsonl", '{"text": "ልጁ", "label": "a"}\n{"text": "x", \n')
    with pytest.raises(DataError, match=r"train\.jsonl:2: not valid JSON"):
        table_rows(path, ReaderSpec(format="auto"))


# --- the real sets give the row counts their COUNTS.tsv states -------------------------------------


def _counts(data_dir, name):
    with open(data_dir / "eval" / name / "COUNTS.tsv", encoding="utf-8") as handle:
        return {(r["lang"], r["split"]): int(r["rows"]) for r in csv.DictReader(handle, delimiter="\t")}


@pytest.mark.parametrize(
    "name, rel, spec",
    [
        (
            "yosm",
            "train.tsv",
            ReaderSpec(
                format="tsv", quoting="none", newline="lf", text_columns=["yo_review"], label_column="sentiment"
            ),
        ),
        (
            "masakhanews",
            "eng/dev.tsv",
            ReaderSpec(format="tsv", text_columns=["headline", "text"], label_column="category"),
        ),
        (
            "masakhanews",
            "xho/test.tsv",
            ReaderSpec(format="tsv", text_columns=["headline", "text"], label_column="category"),
        ),
        ("afrisenti", "yor/train.tsv", ReaderSpec(format="tsv", quoting="none", text_columns=["tweet"])),
        ("afrisenti", "orm/dev.tsv", ReaderSpec(format="tsv", quoting="none", text_columns=["tweet"])),
        ("hedderich_topics", "yor/dev.tsv", ReaderSpec(format="tsv", quoting="none", text_columns=["news_title"])),
    ],
)
def test_real_classification_sets_match_counts(data_dir, name, rel, spec):
    rows, _, _ = table_rows(data_dir / "eval" / name / rel, spec)
    lang, split = ("yor", rel[:-4]) if name == "yosm" else rel[:-4].split("/")
    assert len(rows) == _counts(data_dir, name)[(lang, split)]


def test_yosm_with_universal_newlines_breaks_rows(data_dir):
    """Why `newline: lf`: a bare \\r inside reviews would split records."""
    spec = ReaderSpec(format="tsv", quoting="none", newline="any", text_columns=["yo_review"], label_column="sentiment")
    with pytest.raises(DataError, match=r"yosm/train\.tsv:\d+: 1 fields, header has 2"):
        table_rows(data_dir / "eval/yosm/train.tsv", spec)
