"""`tar` (plain, .gz, .bz2, .xz): regular-file members matching `member`, read in the entry's
`inner_format`, streamed (`r|*`): nothing is extracted to disk.

Safety (RELIABILITY row 21): links, devices and directories are never opened; a member name
that is absolute or climbs out with `..` yields one `unsafe_member` reject. A truncated or
corrupt archive yields the units read so far, then ONE `corrupt_archive` reject: no
exception escapes and the job goes on with other files.
"""
from __future__ import annotations

import fnmatch
import posixpath
import tarfile
import zlib
from typing import BinaryIO, Callable, Iterator

from pipeline.catalog import SourceEntry
from pipeline.decode import EncodingError
from pipeline.records import RawLine
from pipeline.readers.units import UnitOut

ARCHIVE_ERRORS = (tarfile.TarError, EOFError, zlib.error, OSError)


def _unsafe(name: str) -> bool:
    return name.startswith(("/", "\\")) or ".." in posixpath.normpath(name).split("/")


def read_tar(entry: SourceEntry, stream: BinaryIO, out: UnitOut,
             inner: Callable[[SourceEntry, BinaryIO, UnitOut], Iterator[RawLine]]) -> Iterator[RawLine]:
    member_out = out
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as archive:
            for member in archive:
                if not fnmatch.fnmatchcase(member.name, entry.member):
                    continue  # another member (e.g. the English side): not this source
                if _unsafe(member.name):
                    yield out.reject("unsafe_member", f"member {member.name!r} escapes the archive")
                    continue
                if not member.isfile():
                    continue  # links, devices, directories: never followed
                member_out = UnitOut(entry, f"{out.path}::{member.name}")
                handle = archive.extractfile(member)
                try:
                    yield from inner(entry, handle, member_out)
                except EncodingError as err:
                    yield member_out.reject("encoding", str(err))
    except ARCHIVE_ERRORS as err:
        yield member_out.reject("corrupt_archive", f"{type(err).__name__}: {err}")
