"""`xlsx`: one unit per row of the configured column (openpyxl, read-only, values only).

The workbook is a zip, so it is read whole into memory (bounded by `max_document_bytes`).
Before openpyxl sees it, the zip's declared sizes are checked against `max_expand_ratio`
(`bomb`) and `max_decompressed_bytes` (`too_large`); zipfile never inflates a part past its
declared size, so the check holds for lying headers too. Anything that is not a readable
workbook (not a zip, a zip without a sheet, broken sheet XML) is `corrupt_file`.
"""

from __future__ import annotations

import io
import zipfile
from typing import BinaryIO, Iterator

from pipeline.catalog import SourceEntry
from pipeline.decode import RATIO_FLOOR_BYTES, DecompressionLimit, DocumentTooLarge
from pipeline.records import Line
from pipeline.readers.units import UnitOut


def _read_bytes(stream: BinaryIO, limit: int) -> bytes:
    parts, total = [], 0
    while total <= limit and (chunk := stream.read(min(limit + 1 - total, 1 << 20))):
        parts.append(chunk)  # a stream may return less than asked (a .gz, a remote file)
        total += len(chunk)
    data = b"".join(parts)
    if len(data) > limit:
        raise DocumentTooLarge(f"workbook larger than {limit} bytes (max_document_bytes)")
    return data


def _check_expansion(data: bytes, entry: SourceEntry) -> None:
    """Raise `DecompressionLimit` for a zip bomb; a non-zip passes (openpyxl says so)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            expanded = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, ValueError, OSError):
        return
    if expanded > entry.max_decompressed_bytes:
        raise DecompressionLimit(
            "too_large", f"workbook expands to {expanded} bytes (max_decompressed_bytes={entry.max_decompressed_bytes})"
        )
    if expanded > max(RATIO_FLOOR_BYTES, entry.max_expand_ratio * len(data)):
        raise DecompressionLimit(
            "bomb",
            f"workbook of {len(data)} bytes expands to {expanded} "
            f"(more than max_expand_ratio={entry.max_expand_ratio}x): zip bomb",
        )


def _sheet(workbook, entry: SourceEntry):
    if entry.sheet is None:
        return workbook.worksheets[0]
    if isinstance(entry.sheet, int):
        return workbook.worksheets[entry.sheet - 1] if entry.sheet <= len(workbook.worksheets) else None
    return workbook[entry.sheet] if entry.sheet in workbook.sheetnames else None


def read_xlsx(entry: SourceEntry, stream: BinaryIO, out: UnitOut) -> Iterator[Line]:
    import openpyxl

    data = _read_bytes(stream, entry.max_document_bytes)  # over the limit: `too_long`
    _check_expansion(data, entry)  # zip bomb: `bomb` / `too_large`
    try:
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as err:  # noqa: BLE001 -- openpyxl raises a dozen types for bad files
        yield out.reject("corrupt_file", f"not a readable xlsx workbook: {type(err).__name__}: {err}")
        return
    try:
        yield from _column_units(workbook, entry, out)
    except Exception as err:  # noqa: BLE001 -- sheet XML is parsed lazily, row by row
        yield out.reject(
            "corrupt_file",
            f"unreadable sheet after unit {out.count}: {type(err).__name__}: {err}; rest of the file not read",
        )
    finally:
        workbook.close()


def _column_units(workbook, entry: SourceEntry, out: UnitOut) -> Iterator[Line]:
    sheet = _sheet(workbook, entry)
    if sheet is None:
        yield out.reject("malformed", f"no sheet {entry.sheet!r} in {workbook.sheetnames}")
        return
    index = entry.column - 1 if isinstance(entry.column, int) else None
    first_row = 1
    if entry.has_header:
        first_row = 2
        header_row = next(sheet.iter_rows(max_row=1, values_only=True), ())
        header = [str(c).strip() if c is not None else "" for c in header_row]
        if index is None:
            if entry.column not in header:
                yield out.reject("malformed", f"no column {entry.column!r} in header {header}")
                return
            index = header.index(entry.column)
    # only the text column: much faster than building every cell of every row
    for (cell,) in sheet.iter_rows(min_row=first_row, min_col=index + 1, max_col=index + 1, values_only=True):
        yield from out.text("" if cell is None else str(cell))
