"""`tsv` and `csv`: one unit per row, from the configured column only.

Quoting modes (`quoting`): `csv` lets a quoted cell span physical lines and undoubles `""`
(Kirundi dialogues, Lingala songs); `none` takes every character literally (AfroLM, lafand
TSVs); `line` never lets a record span lines but unwraps a cell that is wholly quoted
CSV-style (`"a ""b"" c"` -> `a "b" c`) -- for files like lafand's doc-level fra-fon TSV, which
mixes properly quoted cells with cells that merely start with a stray quote; `csv` would glue
the following rows (French pivot included) into one cell.
"""

from __future__ import annotations

import csv
import re
from typing import BinaryIO, Iterable, Iterator

from pipeline.catalog import SourceEntry
from pipeline.decode import TooLong, iter_text_lines
from pipeline.records import Line
from pipeline.readers.units import UnitOut

_WRAPPED = re.compile(r'^"((?:[^"]|"")*)"$', re.S)


class _LineTooLong(Exception):
    pass


def _csv_rows(lines: Iterable[str | TooLong], entry: SourceEntry) -> Iterator[list[str]]:
    def text_lines() -> Iterator[str]:
        for line in lines:
            if isinstance(line, TooLong):
                raise _LineTooLong(line.n_bytes)
            yield line

    csv.field_size_limit(max(csv.field_size_limit(), entry.max_unit_chars))
    return csv.reader(text_lines(), delimiter=entry.delimiter_char, quotechar='"', doublequote=True, strict=False)


def _line_rows(lines: Iterable[str | TooLong], entry: SourceEntry, unwrap: bool) -> Iterator[list[str] | TooLong]:
    for line in lines:
        if isinstance(line, TooLong):
            yield line
            continue
        cells = line.split(entry.delimiter_char)
        if unwrap:
            cells = [_unwrap(c) for c in cells]
        yield cells


def _unwrap(cell: str) -> str:
    match = _WRAPPED.match(cell)
    return match.group(1).replace('""', '"') if match else cell


def _column_index(entry: SourceEntry, header: list[str] | None) -> int | str:
    """0-based index of the text column, or an error message."""
    if isinstance(entry.column, int):
        return entry.column - 1
    names = [h.strip() for h in header or []]
    if entry.column not in names:
        return f"no column {entry.column!r} in header {names}"
    return names.index(entry.column)


def read_delimited(entry: SourceEntry, stream: BinaryIO, out: UnitOut) -> Iterator[Line]:
    mode = entry.quoting_mode
    lines = iter_text_lines(stream, entry.line_sep, entry.max_unit_chars, keep_ends=mode == "csv")
    rows = _csv_rows(lines, entry) if mode == "csv" else _line_rows(lines, entry, mode == "line")
    try:
        header = None
        if entry.has_header:
            header = next(rows, None)
            if header is None:
                return
            if isinstance(header, TooLong):
                yield out.too_long(header)
                return
        index = _column_index(entry, header)
        if isinstance(index, str):
            yield out.reject("malformed", index)
            return
        for row in rows:
            if isinstance(row, TooLong):
                yield out.too_long(row)
            elif index < len(row):
                yield from out.text(row[index])
            elif row == [] or row == [""]:
                yield from out.text("")  # a blank line: an empty unit, counted downstream
            else:
                yield out.reject(
                    "malformed", f"row {out.count + 1} has {len(row)} cells, no column {entry.column!r}: {row!r}"[:300]
                )
    except _LineTooLong as err:
        yield out.reject("too_long", f"a line of {err.args[0]} bytes inside a CSV record; rest of the file not read")
    except csv.Error as err:
        reason = "too_long" if "field larger" in str(err) else "malformed"
        yield out.reject(reason, f"CSV error after unit {out.count}: {err}; rest of the file not read")
