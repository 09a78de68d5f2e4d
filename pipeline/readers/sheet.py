"""`xlsx`: one unit per row of the configured column (openpyxl, read-only, values only).

The workbook is a zip, so it is read whole into memory (bounded by `max_document_bytes`).
"""
from __future__ import annotations

import io
import zipfile
from typing import BinaryIO, Iterator

from pipeline.catalog import SourceEntry
from pipeline.decode import DocumentTooLarge
from pipeline.records import RawLine
from pipeline.readers.units import UnitOut


def _read_bytes(stream: BinaryIO, limit: int) -> bytes:
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise DocumentTooLarge(f"workbook larger than {limit} bytes (max_document_bytes)")
    return data


def _sheet(workbook, entry: SourceEntry):
    if entry.sheet is None:
        return workbook.worksheets[0]
    if isinstance(entry.sheet, int):
        return workbook.worksheets[entry.sheet - 1] if entry.sheet <= len(workbook.worksheets) else None
    return workbook[entry.sheet] if entry.sheet in workbook.sheetnames else None


def read_xlsx(entry: SourceEntry, stream: BinaryIO, out: UnitOut) -> Iterator[RawLine]:
    import openpyxl

    try:
        workbook = openpyxl.load_workbook(io.BytesIO(_read_bytes(stream, entry.max_document_bytes)),
                                          read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as err:
        yield out.reject("corrupt_file", f"not a readable xlsx workbook: {type(err).__name__}: {err}")
        return
    try:
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
        for (cell,) in sheet.iter_rows(min_row=first_row, min_col=index + 1, max_col=index + 1,
                                       values_only=True):
            yield from out.text("" if cell is None else str(cell))
    finally:
        workbook.close()
