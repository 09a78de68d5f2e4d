"""Turning extracted values into numbered `Line`s, with the per-source quirk options.

Every reader hands each value it extracts (a line, a cell, a JSON string, an XML element's
text) to `UnitOut.text`, which applies the entry's `split_lines` / `split_regex` /
`strip_regex`, rejects pieces that hold undecodable bytes (`decode`) or are longer than
`max_unit_chars` (`too_long`), and numbers the units 1, 2, ... per file (`line_no`).
"""

from __future__ import annotations

import re
from typing import Iterator

from pipeline.catalog import SourceEntry
from pipeline.decode import LINE_BREAK, TooLong, is_undecodable, printable, raw_repr
from pipeline.records import Line


class UnitOut:
    """Numbers and checks the units of one file (or one archive member)."""

    def __init__(self, entry: SourceEntry, path: str):
        self.entry = entry
        self.path = printable(path)  # a file name in any script, or in no valid encoding
        self.count = 0
        self._split = re.compile(entry.split_regex) if entry.split_regex else None
        self._strip = re.compile(entry.strip_regex) if entry.strip_regex else None

    def _make(self, text: str | None, reason: str | None = None, detail: str = "") -> Line:
        self.count += 1
        return Line(
            source=self.entry.name,
            lang=self.entry.lang,
            path=self.path,
            line_no=self.count,
            text=text,
            reason=reason,
            detail=detail,
        )

    def reject(self, reason: str, raw: str) -> Line:
        """A unit that could not be read at all (`detail` says what and where)."""
        return self._make(None, reason, printable(raw[:500]))

    def too_long(self, marker: TooLong) -> Line:
        return self.reject(
            "too_long", f"{marker.n_bytes} bytes without a line break (max_unit_chars={self.entry.max_unit_chars})"
        )

    def _pieces(self, value: str) -> list[str]:
        pieces = LINE_BREAK.split(value) if self.entry.split_lines else [value]
        if self._split is not None:
            pieces = [p for piece in pieces for p in self._split.split(piece)]
        if len(pieces) > 1:  # empty pieces are artefacts of splitting, not units
            pieces = [p for p in pieces if p.strip()] or [""]
        return pieces

    def text(self, value: str | TooLong) -> Iterator[Line]:
        """The unit(s) of one extracted value."""
        if isinstance(value, TooLong):
            yield self.too_long(value)
            return
        for piece in self._pieces(value):
            if is_undecodable(piece):
                yield self._make(None, "decode", raw_repr(piece))
                continue
            if self._strip is not None:
                piece = self._strip.sub("", piece)
            if len(piece) > self.entry.max_unit_chars:
                yield self.reject("too_long", f"{len(piece)} characters (max_unit_chars={self.entry.max_unit_chars})")
            else:
                yield self._make(piece)
