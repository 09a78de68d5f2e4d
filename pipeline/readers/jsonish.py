"""`jsonl`, `json_array` and `js_json`: string values found at a dotted `field` path.

The path starts at the root of each record (jsonl: each line; json_array / js_json: the
whole document). `*` walks every item of a list or every value of an object, in file order:
`translation.hau` (lafand), `*.amharic` (a JSON array of objects), `chapters.*.*`
(bible-tools books: chapter -> verse -> text). js_json files are JavaScript that wraps one
JSON value (`var book = {...};\\nmodule.exports = book;`): the value is decoded from the
first `{` or `[` and whatever follows it is ignored.

JSON nested deeper than Python's recursion limit (`[[[[...` 100,000 levels) makes `json`
raise RecursionError: that record (jsonl) or document is rejected `too_deep`, never a crash.
"""

from __future__ import annotations

import json
import reprlib
from typing import Any, BinaryIO, Iterator

from pipeline.catalog import SourceEntry
from pipeline.decode import TooLong, iter_text_lines, read_all_text
from pipeline.records import Line
from pipeline.readers.units import UnitOut

_MISSING = object()
# A short preview of a non-text value for the reject: never serialise a whole (possibly
# huge or deeply nested) object just to show 200 characters of it.
_PREVIEW = reprlib.Repr()
_PREVIEW.maxlevel, _PREVIEW.maxstring, _PREVIEW.maxother = 3, 100, 100


def walk(value: Any, path: list[str], where: str = "") -> Iterator[tuple[str, Any]]:
    """(location, value) pairs at `path`; a missing key yields (location, _MISSING)."""
    if not path:
        yield where or ".", value
        return
    key, rest = path[0], path[1:]
    if key == "*":
        if isinstance(value, dict):
            items = value.items()
        elif isinstance(value, list):
            items = enumerate(value)
        else:
            yield f"{where}.*", _MISSING
            return
        for k, item in items:
            yield from walk(item, rest, f"{where}.{k}" if where else str(k))
    elif isinstance(value, dict) and key in value:
        yield from walk(value[key], rest, f"{where}.{key}" if where else key)
    elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
        yield from walk(value[int(key)], rest, f"{where}.{key}" if where else key)
    else:
        yield f"{where}.{key}" if where else key, _MISSING


def _emit_values(root: Any, entry: SourceEntry, out: UnitOut, context: str) -> Iterator[Line]:
    for where, value in walk(root, entry.field.split(".")):
        if value is _MISSING:
            yield out.reject("malformed", f"{context}: no field {entry.field!r} (at {where})")
        elif value is None:
            yield from out.text("")
        elif isinstance(value, str):
            yield from out.text(value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            yield from out.text(str(value))
        else:
            yield out.reject(
                "malformed", f"{context}: {where} is a {type(value).__name__}, not text: {_PREVIEW.repr(value)[:200]}"
            )


def read_jsonl(entry: SourceEntry, stream: BinaryIO, out: UnitOut) -> Iterator[Line]:
    for physical, line in enumerate(iter_text_lines(stream, entry.line_sep, entry.max_unit_chars), 1):
        if isinstance(line, TooLong):
            yield out.too_long(line)
            continue
        if not line.strip():
            yield from out.text("")
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            yield out.reject("malformed", f"line {physical}: not JSON ({err}): {line[:200]!r}")
            continue
        except RecursionError:
            yield out.reject("too_deep", f"line {physical}: JSON nested too deep to parse: {line[:100]!r}")
            continue
        yield from _emit_values(record, entry, out, f"line {physical}")


def _parse_document(entry: SourceEntry, stream: BinaryIO, out: UnitOut, wrapped: bool):
    text = read_all_text(stream, entry.max_document_bytes)
    try:
        if not wrapped:
            return json.loads(text), None
        starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
        if not starts:
            return None, out.reject("malformed", "no JSON object or array in the script")
        value, _ = json.JSONDecoder().raw_decode(text, min(starts))
    except json.JSONDecodeError as err:
        return None, out.reject("malformed", f"not JSON: {err}")
    except RecursionError:
        return None, out.reject("too_deep", "JSON nested too deep to parse")
    return value, None


def read_json_document(entry: SourceEntry, stream: BinaryIO, out: UnitOut) -> Iterator[Line]:
    root, error = _parse_document(entry, stream, out, wrapped=entry.unit_format == "js_json")
    if error is not None:
        yield error
        return
    yield from _emit_values(root, entry, out, "document")
