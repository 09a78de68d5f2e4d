"""`lines`: one unit per line (LF, CRLF or bare CR; see pipeline/decode.py)."""

from __future__ import annotations

from typing import BinaryIO, Iterator

from pipeline.catalog import SourceEntry
from pipeline.decode import iter_text_lines
from pipeline.records import Line
from pipeline.readers.units import UnitOut


def read_lines(entry: SourceEntry, stream: BinaryIO, out: UnitOut) -> Iterator[Line]:
    lines = iter_text_lines(stream, entry.line_sep, entry.max_unit_chars)
    if entry.has_header:
        next(lines, None)  # a header names the column; it is not text
    if not entry.block_first_line:
        for line in lines:
            yield from out.text(line)
        return
    # Blocks separated by blank lines whose first line is the text and the rest a gloss
    # (Yoruba proverbs: proverb, English translation, English explanation). The glosses are
    # still counted, as reason `pivot`, so that read = kept + dropped holds.
    in_block = False
    for line in lines:
        if isinstance(line, str) and not line.strip():
            in_block = False
            yield from out.text(line)
        elif in_block:
            yield out.reject("pivot", f"line {out.count + 1}: not the first line of its block")
        else:
            in_block = True
            yield from out.text(line)
