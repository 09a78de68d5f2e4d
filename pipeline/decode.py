"""Bytes to text units, in bounded memory, without ever emitting mojibake.

Decoding policy (RELIABILITY rows 19, 20, 24; documented in docs/corpus-sources.md):
- A UTF-8 BOM is stripped. A UTF-16/UTF-32 BOM switches the whole stream to that codec
  (transcoded chunk by chunk); a stream that breaks that codec, or that looks like UTF-16
  without a BOM (NUL bytes), is an `EncodingError`: the caller rejects the whole file.
- Everything else is read as UTF-8 with `surrogateescape`, so invalid bytes survive as lone
  surrogates U+DC80..U+DCFF. Readers split units first, then any unit that still holds such a
  surrogate is rejected with reason `decode` (the rest of the file is kept). We do not repair
  cp1252 smart quotes: a guess that is wrong once puts mojibake into a shard, and the
  affected files (Naija Bible c_0/c_1) are also in the clean `pcm_bible.tar.gz`.
- LF, CRLF and bare CR all end a line (`line_sep="auto"`); `lf` keeps bare CRs inside a line,
  `cr` splits on CR only. Reading is chunked: a line longer than `4 * max_chars` bytes is
  never held in memory; it comes out as a `TooLong` marker (UTF-8 has at most 4 bytes a
  character, so it is certainly longer than `max_chars` characters).
"""
from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from typing import BinaryIO, Iterable, Iterator

CHUNK_BYTES = 1 << 18
UTF8_BOM = codecs.BOM_UTF8
# Longest BOM first: the UTF-32-LE BOM starts with the UTF-16-LE one.
_WIDE_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_SEPARATORS = {"auto": re.compile(rb"\r\n|\r|\n"), "lf": re.compile(rb"\r?\n"),
               "cr": re.compile(rb"\r")}
_UNDECODABLE = re.compile("[\udc80-\udcff]")
LINE_BREAK = re.compile(r"\r\n|\r|\n")


class EncodingError(ValueError):
    """The whole stream is in an encoding we refuse to guess (reason `encoding`)."""


class DocumentTooLarge(ValueError):
    """A format parsed as one piece (JSON, xlsx) is over its size limit (reason `too_long`)."""


@dataclass(frozen=True)
class TooLong:
    """Stands for a line that was skipped unread because it exceeds the size limit."""

    n_bytes: int


def iter_chunks(stream: BinaryIO, size: int = CHUNK_BYTES) -> Iterator[bytes]:
    while chunk := stream.read(size):
        yield chunk


def _transcode(first: bytes, rest: Iterator[bytes], codec: str) -> Iterator[bytes]:
    decoder = codecs.getincrementaldecoder(codec)(errors="strict")
    try:
        for chunk in _chain(first, rest):
            yield decoder.decode(chunk).encode("utf-8")
        yield decoder.decode(b"", final=True).encode("utf-8")
    except UnicodeDecodeError as err:
        raise EncodingError(f"invalid {codec} ({err.reason}); rest of the file not read") from None


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def utf8_chunks(stream: BinaryIO, chunk_size: int = CHUNK_BYTES) -> Iterator[bytes]:
    """The stream as UTF-8 bytes (BOM stripped, UTF-16/32 transcoded), in chunks."""
    chunks = iter_chunks(stream, chunk_size)
    first = next(chunks, b"")
    while len(first) < 4:  # make sure a BOM is never split across reads
        more = next(chunks, b"")
        if not more:
            break
        first += more
    for bom, codec in _WIDE_BOMS:
        if first.startswith(bom):
            yield from _transcode(first[len(bom):], chunks, codec)
            return
    if first.startswith(UTF8_BOM):
        first = first[len(UTF8_BOM):]
    head = first[:4096]
    if head.count(b"\x00") > len(head) // 10:
        raise EncodingError("NUL bytes: UTF-16/32 without a BOM, or a binary file; whole file rejected")
    yield first
    yield from chunks


def split_lines(chunks: Iterable[bytes], line_sep: str, max_bytes: int) -> Iterator[bytes | TooLong]:
    """Lines (without their terminators) from byte chunks; over-long lines become `TooLong`."""
    sep = _SEPARATORS[line_sep]
    buf = bytearray()
    skipped = 0  # bytes of an over-long line already thrown away
    for chunk in chunks:
        buf += chunk
        start = 0
        while (match := sep.search(buf, start)) is not None:
            if match.group() == b"\r" and match.end() == len(buf) and line_sep == "auto":
                break  # a CR at the end of the buffer may be the first half of CRLF
            if skipped:
                yield TooLong(skipped + match.start() - start)
                skipped = 0
            else:
                yield bytes(buf[start:match.start()])
            start = match.end()
        del buf[:start]
        if len(buf) > max_bytes:
            skipped += len(buf)
            buf.clear()
    # End of stream: a CR held back above was a terminator after all.
    if line_sep == "auto" and buf.endswith(b"\r"):
        del buf[-1:]
        if skipped:
            yield TooLong(skipped + len(buf))
        else:
            yield bytes(buf)
    elif skipped:
        yield TooLong(skipped + len(buf))
    elif buf:
        yield bytes(buf.rstrip(b"\r") if line_sep == "lf" else buf)


def decode_lossless(data: bytes) -> str:
    """UTF-8 with invalid bytes kept as lone surrogates, so they can be rejected later."""
    return data.decode("utf-8", errors="surrogateescape")


def iter_text_lines(stream: BinaryIO, line_sep: str = "auto", max_chars: int = 1_000_000,
                    keep_ends: bool = False) -> Iterator[str | TooLong]:
    """Decoded lines of a binary stream; `keep_ends` gives each line a "\n" (for csv)."""
    end = "\n" if keep_ends else ""
    for line in split_lines(utf8_chunks(stream), line_sep, max_bytes=4 * max_chars):
        yield line if isinstance(line, TooLong) else decode_lossless(line) + end


def read_all_text(stream: BinaryIO, max_bytes: int) -> str:
    """A whole (small) document as text, for formats that must be parsed as one piece."""
    parts, total = [], 0
    for chunk in utf8_chunks(stream):
        total += len(chunk)
        if total > max_bytes:
            raise DocumentTooLarge(f"document larger than {max_bytes} bytes (max_document_bytes)")
        parts.append(chunk)
    return decode_lossless(b"".join(parts))


def is_undecodable(text: str) -> bool:
    return _UNDECODABLE.search(text) is not None


def raw_repr(text: str, limit: int = 200) -> str:
    """repr of the original bytes of `text`, cut to `limit` bytes around the first bad byte."""
    data = text.encode("utf-8", errors="surrogateescape")
    bad = _UNDECODABLE.search(text)
    start = 0
    if bad is not None:
        start = max(0, len(text[:bad.start()].encode("utf-8", errors="surrogateescape")) - limit // 4)
    return ("..." if start else "") + repr(data[start:start + limit])
