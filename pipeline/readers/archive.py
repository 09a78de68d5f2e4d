"""`tar` (plain, .gz, .bz2, .xz): regular-file members matching `member`, read in the entry's
`inner_format`, streamed (`r|`): nothing is extracted to disk, nothing is written anywhere.

Safety: a matching member whose name is absolute (`/x`, `C:x`,
`\\x`) or climbs out with `..`, and a matching symlink, hard link or device file, yields one
`unsafe_member` reject and is never opened or followed (directories are skipped: they hold
no text). The archive is decompressed by `bounded_decompress`, so a tar bomb ends in one
`bomb`/`too_large` reject. A truncated or corrupt archive yields the units read so far, then
ONE `corrupt_archive` reject: no exception escapes and the job goes on with other files.
"""

from __future__ import annotations

import fnmatch
import lzma
import re
import tarfile
import zlib
from typing import BinaryIO, Callable, Iterator

from pipeline.catalog import SourceEntry
from pipeline.decode import DecompressionLimit, EncodingError, bounded_decompress
from pipeline.records import Line
from pipeline.readers.units import UnitOut

ARCHIVE_ERRORS = (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError)
_DRIVE = re.compile(r"^[A-Za-z]:")


def _unsafe(name: str) -> bool:
    """Absolute (POSIX, Windows drive or UNC) or climbing out with `..` (either slash)."""
    posix = name.replace("\\", "/")
    return posix.startswith("/") or bool(_DRIVE.match(posix)) or ".." in posix.split("/")


def _link_or_device(member: tarfile.TarInfo) -> str | None:
    if member.issym() or member.islnk():
        return f"link to {member.linkname!r}"
    if member.ischr() or member.isblk() or member.isfifo():
        return "device or FIFO"
    return None


def read_tar(
    entry: SourceEntry,
    stream: BinaryIO,
    out: UnitOut,
    inner: Callable[[SourceEntry, BinaryIO, UnitOut], Iterator[Line]],
) -> Iterator[Line]:
    member_out = out
    try:
        plain = bounded_decompress(stream, entry.max_expand_ratio, entry.max_decompressed_bytes)
        with tarfile.open(fileobj=plain, mode="r|") as archive:
            for member in archive:
                if not fnmatch.fnmatchcase(member.name, entry.member):
                    continue  # another member (e.g. the English side): not this source
                if _unsafe(member.name):
                    yield out.reject("unsafe_member", f"member {member.name!r} escapes the archive")
                    continue
                if (kind := _link_or_device(member)) is not None:
                    yield out.reject("unsafe_member", f"member {member.name!r} is a {kind}: never followed")
                    continue
                if not member.isfile():
                    continue  # a directory: no text of its own
                member_out = UnitOut(entry, f"{out.path}::{member.name}")
                handle = archive.extractfile(member)
                try:
                    yield from inner(entry, handle, member_out)
                except EncodingError as err:
                    yield member_out.reject("encoding", str(err))
    except DecompressionLimit as err:
        yield member_out.reject(err.reason, str(err))
    except ARCHIVE_ERRORS as err:
        yield member_out.reject("corrupt_archive", f"{type(err).__name__}: {err}")
