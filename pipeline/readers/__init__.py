"""Readers: one catalog entry's file -> `Line`s.

    from pipeline.readers import read_file
    for unit in read_file(entry, path):   # unit.text is None -> unit.reason says why

`read_file` never raises for bad data: undecodable units (`decode`), whole files in an
unsupported encoding (`encoding`), unreadable or truncated files (`corrupt_file`,
`corrupt_archive`), broken records (`malformed`), over-long units (`too_long`), unsafe archive
members, links and devices (`unsafe_member`), decompression bombs (`bomb`, `too_large`),
JSON nested too deep to parse (`too_deep`) and glosses skipped by `block_first_line` (`pivot`) all come out as
`Line(text=None, reason=..., detail=<what and where>)`. Empty units are delivered too (the Beam side counts them),
so for every file: units read = units kept + units dropped.
"""

from __future__ import annotations

import gzip
import lzma
import zlib
from functools import partial
from typing import BinaryIO, Callable, Iterator

from pipeline.catalog import SourceEntry
from pipeline.decode import DecompressionLimit, DocumentTooLarge, EncodingError, bounded_decompress
from pipeline.records import Line
from pipeline.readers.archive import read_tar
from pipeline.readers.delimited import read_delimited
from pipeline.readers.jsonish import read_json_document, read_jsonl
from pipeline.readers.markup import read_ces_xml, read_xhtml
from pipeline.readers.sheet import read_xlsx
from pipeline.readers.text import read_lines
from pipeline.readers.units import UnitOut

__all__ = ["read_file", "read_stream", "READERS", "REASONS", "Line"]

# Every reason a reader drops a unit with (the module doc says when).
REASONS = (
    "decode",
    "encoding",
    "corrupt_file",
    "corrupt_archive",
    "malformed",
    "too_long",
    "unsafe_member",
    "bomb",
    "too_large",
    "too_deep",
    "pivot",
    "unreadable",
)

Reader = Callable[[SourceEntry, BinaryIO, UnitOut], Iterator[Line]]

READERS: dict[str, Reader] = {
    "lines": read_lines,
    "tsv": read_delimited,
    "csv": read_delimited,
    "jsonl": read_jsonl,
    "json_array": read_json_document,
    "js_json": read_json_document,
    "ces_xml": read_ces_xml,
    "xhtml": read_xhtml,
    "xlsx": read_xlsx,
}
READERS["tar"] = partial(read_tar, inner=lambda entry, stream, out: READERS[entry.inner_format](entry, stream, out))


def _open(path: str) -> BinaryIO:
    """Raw bytes through Beam's FileSystems (local, gs://, s3://), never auto-decompressed."""
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def read_stream(entry: SourceEntry, stream: BinaryIO, path: str) -> Iterator[Line]:
    """Units of one already-open binary stream (a single `.gz` file is gunzipped here)."""
    out = UnitOut(entry, path)
    try:
        if entry.format != "tar" and path.endswith(".gz"):
            stream = bounded_decompress(stream, entry.max_expand_ratio, entry.max_decompressed_bytes, kind="gzip")
        yield from READERS[entry.format](entry, stream, out)
    except DecompressionLimit as err:
        yield out.reject(err.reason, str(err))
    except EncodingError as err:
        yield out.reject("encoding", str(err))
    except DocumentTooLarge as err:
        yield out.reject("too_long", str(err))
    except (EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile, OSError) as err:
        yield out.reject("corrupt_file", f"{type(err).__name__}: {err}; rest of the file not read")


def read_file(entry: SourceEntry, path: str) -> Iterator[Line]:
    """All units of one file of `entry` (see the module doc for the rejects)."""
    try:
        stream = _open(path)
    except Exception as err:  # Beam wraps every filesystem error in its own types
        yield UnitOut(entry, path).reject("unreadable", f"cannot open: {type(err).__name__}: {err}")
        return
    with stream:
        yield from read_stream(entry, stream, path)
