"""Bytes to text units, in bounded memory, without ever emitting mojibake.

Decoding policy (documented in docs/corpus-sources.md):
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
- Compressed streams (a `.gz` file, a tar.gz/bz2/xz) are decompressed through
  `bounded_decompress`, which stops with `DecompressionLimit` (reason `bomb`) once the output
  outgrows `max_expand_ratio` x the compressed bytes read, or (reason `too_large`) once it
  passes `max_decompressed_bytes`: a bomb costs one chunk of memory, not an OOM kill.
"""

from __future__ import annotations

import bz2
import codecs
import gzip
import lzma
import re
from dataclasses import dataclass
from typing import BinaryIO, Iterable, Iterator

CHUNK_BYTES = 1 << 18
UTF8_BOM = codecs.BOM_UTF8
# Longest BOM first: the UTF-32-LE BOM starts with the UTF-16-LE one.
_WIDE_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_SEPARATORS = {"auto": re.compile(rb"\r\n|\r|\n"), "lf": re.compile(rb"\r?\n"), "cr": re.compile(rb"\r")}
_UNDECODABLE = re.compile("[\udc80-\udcff]")
LINE_BREAK = re.compile(r"\r\n|\r|\n")


class EncodingError(ValueError):
    """The whole stream is in an encoding we refuse to guess (reason `encoding`)."""


class DocumentTooLarge(ValueError):
    """A format parsed as one piece (JSON, xlsx) is over its size limit (reason `too_long`)."""


class DecompressionLimit(Exception):
    """Decompressed data over a limit; `reason` is `bomb` (ratio) or `too_large` (size).

    Not a ValueError/OSError on purpose: readers that catch those for bad data must let it
    through to `read_stream`/`read_tar`, which turn it into its own reject reason.
    """

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


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
            yield from _transcode(first[len(bom) :], chunks, codec)
            return
    if first.startswith(UTF8_BOM):
        first = first[len(UTF8_BOM) :]
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
                yield bytes(buf[start : match.start()])
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


def iter_text_lines(
    stream: BinaryIO, line_sep: str = "auto", max_chars: int = 1_000_000, keep_ends: bool = False
) -> Iterator[str | TooLong]:
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


def printable(text: str) -> str:
    """`text` with undecodable bytes (file or member names in a legacy encoding) written as
    `\\x93`, so that paths and messages can always be written out as UTF-8."""
    return text.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="backslashreplace")


def raw_repr(text: str, limit: int = 200) -> str:
    """repr of the original bytes of `text`, cut to `limit` bytes around the first bad byte."""
    data = text.encode("utf-8", errors="surrogateescape")
    bad = _UNDECODABLE.search(text)
    start = 0
    if bad is not None:
        start = max(0, len(text[: bad.start()].encode("utf-8", errors="surrogateescape")) - limit // 4)
    return ("..." if start else "") + repr(data[start : start + limit])


# A decompressed output below this many bytes is never a bomb, whatever its ratio: tiny
# repetitive files (a 2 KB file of one repeated line) can compress 100x legitimately.
RATIO_FLOOR_BYTES = 1 << 20
_COMPRESSED_MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bz2"), (b"\xfd7zXZ\x00", "xz"))


class _CountingReader:
    """Reads `prefix` then `raw`, counting the compressed bytes handed to the decompressor."""

    def __init__(self, raw: BinaryIO, prefix: bytes = b""):
        self.raw, self.prefix, self.n_read = raw, prefix, 0

    def read(self, size: int = -1) -> bytes:
        if self.prefix:
            data = self.prefix if size is None or size < 0 else self.prefix[:size]
            self.prefix = self.prefix[len(data) :]
        else:
            data = self.raw.read(size)
        self.n_read += len(data)
        return data


class _BoundedReader:
    """A decompressing reader that raises `DecompressionLimit` instead of growing without end."""

    def __init__(self, inner: BinaryIO, counter: _CountingReader, kind: str, max_ratio: int, max_bytes: int):
        self.inner, self.counter, self.kind = inner, counter, kind
        self.max_ratio, self.max_bytes, self.n_out = max_ratio, max_bytes, 0

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:  # never decompress "everything" in one call
            return b"".join(iter(lambda: self.read(CHUNK_BYTES), b""))
        data = self.inner.read(min(size, CHUNK_BYTES))
        self.n_out += len(data)
        if self.n_out > self.max_bytes:
            raise DecompressionLimit(
                "too_large",
                f"{self.kind} data expands past {self.max_bytes} "
                "bytes (max_decompressed_bytes); rest of the file not read",
            )
        if self.n_out > max(RATIO_FLOOR_BYTES, self.max_ratio * self.counter.n_read):
            raise DecompressionLimit(
                "bomb",
                f"{self.kind} data expands more than "
                f"{self.max_ratio}x ({self.counter.n_read} compressed bytes -> "
                f"{self.n_out}+; max_expand_ratio): decompression bomb, "
                "rest of the file not read",
            )
        return data

    def close(self) -> None:
        self.inner.close()


def bounded_decompress(stream: BinaryIO, max_ratio: int, max_bytes: int, kind: str | None = None) -> BinaryIO:
    """`stream` decompressed (gzip, bz2 or xz, sniffed from its magic bytes unless `kind` is
    given), within the ratio and size limits; an uncompressed stream is returned as it is."""
    head = stream.read(6)
    counter = _CountingReader(stream, head)
    if kind is None:
        kind = next((k for magic, k in _COMPRESSED_MAGIC if head.startswith(magic)), None)
        if kind is None:
            return counter  # not compressed: nothing can expand
    opener = {"gzip": lambda f: gzip.GzipFile(fileobj=f, mode="rb"), "bz2": bz2.BZ2File, "xz": lzma.LZMAFile}[kind]
    return _BoundedReader(opener(counter), counter, kind, max_ratio, max_bytes)
