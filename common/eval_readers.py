"""Readers for CoNLL NER files and TSV/CSV/JSONL classification files.

Each reader yields plain dicts with the line they came from, so every complaint can name a
file and line. Readers do not know label sets: finetuning (finetune/data.py) checks labels and
builds `datasets.Dataset`s from these generators; decontamination (common/eval_sets.py) takes
only the text.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from common import uri
from common.config import ConfigError

if TYPE_CHECKING:
    from common.eval_sets import ReaderSpec

IOB2_LABEL = re.compile(r"^(O|[BI]-\S+)$")


class DataError(ConfigError):
    """A data file cannot be used as it is; the message names the file and line."""


def open_text(path: Path | str, newline: str | None = None):
    """Open a UTF-8 text file, gzipped or not (MasakhaNER 2.0 ships `train.txt.gz`); a local
    path or a URI (`s3://...`)."""
    if not uri.exists(path):
        raise DataError(f"{path}: file not found")
    raw = uri.open_read(path)
    if str(path).endswith(".gz"):
        return gzip.open(raw, "rt", encoding="utf-8", newline=newline)
    return io.TextIOWrapper(raw, encoding="utf-8", newline=newline)


def detect_format(path: Path, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    name = str(path).rstrip("/").rsplit("/", 1)[-1]
    name = name[:-3] if name.endswith(".gz") else name
    for suffix, found in (
        (".tsv", "tsv"),
        (".csv", "csv"),
        (".jsonl", "jsonl"),
        (".json", "jsonl"),
        (".txt", "conll"),
        (".conll", "conll"),
        (".iob", "conll"),
    ):
        if name.endswith(suffix):
            return found
    raise DataError(f"{path}: cannot tell the format from the name; set reader.format")


# --- CoNLL ---------------------------------------------------------------------------------


def _conll_fields(raw: str, path: Path, lineno: int) -> tuple[str, str]:
    """`token label` (tab or spaces, extra middle columns ignored) -> (token, label).

    A line that starts with whitespace and holds one field is an empty token with a label
    (MasakhaNER 2.0 xho train has two: ' O'); a line with one field and no leading
    whitespace has lost its label, which is an error.
    """
    fields = raw.split()
    if len(fields) >= 2:
        return fields[0], fields[-1]
    if raw[:1] in (" ", "\t"):
        return "", fields[0]
    raise DataError(f"{path}:{lineno}: one column {raw.strip()!r}; expected 'token label' (tab or space separated)")


def read_conll(path: str | Path, counts: Counter | None = None) -> Iterator[dict]:
    """Sentences of a CoNLL file as `{"words", "labels", "line"}` (line of the first word).

    Handles blank-line separators (also whitespace-only lines), tab/space mixes, trailing
    spaces, CRLF, `-DOCSTART-` lines and a missing final blank line. Labels must be IOB2.
    """
    path = path if uri.is_remote(path) else Path(path)
    counts = counts if counts is not None else Counter()
    words: list[str] = []
    labels: list[str] = []
    start = 0
    with open_text(path) as handle:
        for lineno, line in enumerate(handle, 1):
            raw = line.rstrip("\r\n")
            if not raw.strip():
                if words:
                    yield {"words": words, "labels": labels, "line": start}
                    words, labels = [], []
                continue
            if raw.split()[0] == "-DOCSTART-":
                counts["docstart_lines"] += 1
                continue
            token, label = _conll_fields(raw, path, lineno)
            if not IOB2_LABEL.match(label):
                raise DataError(f"{path}:{lineno}: label {label!r} is not IOB2 (O, B-TYPE or I-TYPE)")
            if not token:
                counts["empty_tokens"] += 1
            if not words:
                start = lineno
            words.append(token)
            labels.append(label)
    if words:  # no blank line after the last sentence
        yield {"words": words, "labels": labels, "line": start}


# --- classification tables ------------------------------------------------------------------


class BadRows:
    """Raise at the first bad row, or count and keep a few examples when skipping is asked."""

    def __init__(self, skip: bool, counts: Counter, examples: list[str], keep: int = 20):
        self.skip, self.counts, self.examples, self.keep = skip, counts, examples, keep

    def __call__(self, where: str, reason: str, detail: str) -> None:
        message = f"{where}: {detail}"
        if not self.skip:
            raise DataError(message + " (set skip_bad_rows=true to skip and count such rows)")
        self.counts[f"skipped_{reason}"] += 1
        if len(self.examples) < self.keep:
            self.examples.append(message)


def _records_no_quoting(path: Path, spec: ReaderSpec, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """Split on newlines and the delimiter only; quote characters are text (AfriSenti)."""
    with open_text(path, newline="") as handle:
        data = handle.read()
    if spec.newline == "lf":  # bare \r stays inside the record (YOSM)
        lines = data.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    else:
        lines = data.splitlines()
    for lineno, line in enumerate(lines, 1):
        yield lineno, line.split(delimiter)


def _records_csv(path: Path, delimiter: str, bad: BadRows) -> Iterator[tuple[int, list[str]]]:
    """Quote-aware reading (multi-line cells); a malformed quote is a bad row."""
    with open_text(path, newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter, quotechar='"', strict=True)
        start = 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as err:
                bad(
                    f"{path}:{start}-{reader.line_num}",
                    "bad_quote",
                    f"malformed quoting ({err}); lines {start}-{reader.line_num} lost",
                )
                start = reader.line_num + 1
                continue
            yield start, row
            start = reader.line_num + 1


def _records_jsonl(path: Path, bad: BadRows) -> Iterator[tuple[int, dict]]:
    with open_text(path) as handle:
        for lineno, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                bad(f"{path}:{lineno}", "bad_json", f"not valid JSON ({err.msg})")
                continue
            if not isinstance(record, dict):
                bad(f"{path}:{lineno}", "bad_json", "a JSON line must be an object")
                continue
            yield lineno, record


def _table_dicts(path: Path, spec: ReaderSpec, fmt: str, bad: BadRows) -> Iterator[tuple[int, dict]]:
    """Rows of a delimited file as dicts keyed by its header."""
    delimiter = spec.delimiter or ("\t" if fmt == "tsv" else ",")
    if spec.quoting == "none":
        records = _records_no_quoting(path, spec, delimiter)
    else:
        records = _records_csv(path, delimiter, bad)
    header = None
    for lineno, fields in records:
        if header is None:
            header = [h.strip().lstrip("\ufeff") for h in fields]
            needed = list(spec.text_columns) + [spec.label_column]
            missing = [c for c in needed if c not in header]
            if missing:
                raise DataError(
                    f"{path}:{lineno}: header has no column(s) {missing}; it has {header} "
                    "(set reader.text_columns / reader.label_column)"
                )
            continue
        if fields == [""] or not fields:
            continue  # blank line
        if len(fields) != len(header):
            bad(f"{path}:{lineno}", "wrong_field_count", f"{len(fields)} fields, header has {len(header)}")
            continue
        yield lineno, dict(zip(header, fields))
    if header is None:
        raise DataError(f"{path}: empty file (no header line)")


def read_table(path: str | Path, spec: ReaderSpec, bad: BadRows) -> Iterator[dict]:
    """Classification rows `{"text", "label", "line"}`; texts are joined, labels raw strings."""
    path = path if uri.is_remote(path) else Path(path)
    fmt = detect_format(path, spec.format)
    if fmt == "conll":
        raise DataError(f"{path}: a classification task cannot read CoNLL; set reader.format")
    rows = _records_jsonl(path, bad) if fmt == "jsonl" else _table_dicts(path, spec, fmt, bad)
    for lineno, row in rows:
        missing = [c for c in list(spec.text_columns) + [spec.label_column] if c not in row]
        if missing:
            bad(f"{path}:{lineno}", "missing_column", f"no field(s) {missing}")
            continue
        parts = [str(row[c]).strip() for c in spec.text_columns if row[c] is not None]
        text = spec.text_join.join(p for p in parts if p)
        label = row[spec.label_column]
        label = "" if label is None else str(label).strip()
        if not text:
            bad(f"{path}:{lineno}", "empty_text", "empty text")
            continue
        if not label:
            bad(f"{path}:{lineno}", "empty_label", "empty label")
            continue
        yield {"text": text, "label": label, "line": lineno}
