"""`ces_xml` (OPUS/CES Bibles: one unit per `<seg>`) and `xhtml` (one unit per block).

Markup whitespace (the indentation around `<seg>` text, blank space between paragraphs) is
layout, not text: units are stripped and whitespace between blocks makes no unit.

Hostile markup: expat refuses entity expansion bombs ("billion laughs": reason
`bomb`) and never fetches external entities; deep nesting is parsed without recursion.
`HTMLParser` rescans its whole pending buffer on every `feed`, so an unclosed `<a ` followed
by many short lines was quadratic (20,000 lines: 198 s). Lines are therefore fed in batches
of `_FEED_CHARS`, and pending markup longer than `_MAX_PENDING_CHARS` (no real page comes
near: the 616 ENH pages never leave anything pending at a line end) is rejected `too_long`
and the parser restarted after it.
"""

from __future__ import annotations

from html.parser import HTMLParser
from typing import BinaryIO, Iterator
from xml.etree import ElementTree

from pipeline.catalog import SourceEntry
from pipeline.decode import TooLong, iter_chunks, iter_text_lines
from pipeline.records import Line
from pipeline.readers.units import UnitOut


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def read_ces_xml(entry: SourceEntry, stream: BinaryIO, out: UnitOut) -> Iterator[Line]:
    """Streaming parse; `entry.element` elements' text (an XML error ends the file)."""
    parser = ElementTree.XMLPullParser(events=("end",))
    try:
        for chunk in iter_chunks(stream):
            parser.feed(chunk)
            for _, elem in parser.read_events():
                if _local(elem.tag) == entry.element:
                    yield from out.text("".join(elem.itertext()).strip())
                    elem.clear()
        parser.close()
        for _, elem in parser.read_events():
            if _local(elem.tag) == entry.element:
                yield from out.text("".join(elem.itertext()).strip())
    except ElementTree.ParseError as err:
        reason = "bomb" if "amplification" in str(err) else "malformed"
        yield out.reject(reason, f"XML error ({err}); rest of the file not read")


# Elements whose start or end closes the current text block.
_BLOCKS = {
    "p",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "li",
    "td",
    "th",
    "tr",
    "div",
    "br",
    "blockquote",
    "center",
    "table",
    "ul",
    "ol",
    "dd",
    "dt",
    "pre",
    "section",
    "article",
    "header",
    "footer",
    "body",
}
_SKIP = {"script", "style", "head", "title"}


class _BlockText(HTMLParser):
    """Collects the text of block elements inside <body>, one string per block."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[str] = []
        self._buf: list[str] = []
        self._skip = 0

    def _flush(self) -> None:
        text = "".join(self._buf).strip()
        self._buf = []
        if text:
            self.blocks.append(" ".join(text.split()))

    def handle_starttag(self, tag, attrs):
        if tag in _SKIP:
            self._skip += 1
        elif tag in _BLOCKS:
            self._flush()

    def handle_startendtag(self, tag, attrs):
        if tag in _BLOCKS:
            self._flush()

    def handle_endtag(self, tag):
        if tag in _SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCKS:
            self._flush()

    def handle_data(self, data):
        if not self._skip:
            self._buf.append(data)

    def take(self) -> list[str]:
        blocks, self.blocks = self.blocks, []
        return blocks


_FEED_CHARS = 1 << 16
_MAX_PENDING_CHARS = 1 << 18


def _batched(lines: Iterator[str | TooLong]) -> Iterator[str | TooLong]:
    """Lines joined into pieces of about `_FEED_CHARS` (TooLong markers passed through)."""
    batch, size = [], 0
    for line in lines:
        if isinstance(line, TooLong):
            if batch:
                yield "".join(batch)
                batch, size = [], 0
            yield line
            continue
        batch.append(line)
        size += len(line)
        if size >= _FEED_CHARS:
            yield "".join(batch)
            batch, size = [], 0
    if batch:
        yield "".join(batch)


def read_xhtml(entry: SourceEntry, stream: BinaryIO, out: UnitOut) -> Iterator[Line]:
    """Tolerant HTML parse (entities, unclosed tags); the `<?xml` prolog is ignored."""
    parser = _BlockText()
    lines = iter_text_lines(stream, entry.line_sep, entry.max_unit_chars, keep_ends=True)
    for piece in _batched(lines):
        if isinstance(piece, TooLong):
            yield out.too_long(piece)
            continue
        parser.feed(piece)
        for block in parser.take():
            yield from out.text(block)
        if len(parser.rawdata) > _MAX_PENDING_CHARS:
            yield out.reject(
                "too_long",
                f"unclosed markup over {_MAX_PENDING_CHARS} characters: "
                f"{parser.rawdata[:100]!r}; parser restarted after it",
            )
            parser.reset()
    parser.close()
    parser._flush()
    for block in parser.take():
        yield from out.text(block)
