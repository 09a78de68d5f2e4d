"""The source catalog: which raw files feed the corpus, in which format and language.

`pipeline/catalog.yaml` lists one entry per source (docs/corpus-sources.md documents every
field). `load_catalog` validates the whole file before any work starts, naming the bad entry;
`expand_entry` lists an entry's files through Beam's `FileSystems`, so `gs://` or `s3://`
data dirs work too, and a pattern that matches nothing is an error unless the entry is
`optional` (then a counted skip).

    python -m pipeline.catalog_check --check data_dir=../shared/data

reads every entry and prints files, units and rejects by reason (for users adding a source).
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from common import uri
from common.config import ConfigError

DEFAULT_CATALOG = Path(__file__).with_name("catalog.yaml")
DEFAULT_DATA_DIR = "../shared/data"
DEFAULT_MAX_UNIT_CHARS = 1_000_000
DEFAULT_MAX_DOCUMENT_BYTES = 256 << 20
# Compressed input (.gz files, tar.gz/bz2/xz, the zip inside xlsx): text compresses 3-10x
# (the real tars 3x, the real workbooks at most 11x per part); 100x is a decompression bomb.
DEFAULT_MAX_EXPAND_RATIO = 100
DEFAULT_MAX_DECOMPRESSED_BYTES = 1 << 30

# ISO 639-3 codes a catalog entry may use: the 38 corpus languages of data/README.md, then
# pivot and neighbour languages. A code outside this list is a typo until proven otherwise
# (HornMT's "aaf" for Afar, the Swahili Bible's "ssw"): add it here deliberately.
KNOWN_LANGS = {
    # the 23 AfroLM languages
    "amh": "Amharic",
    "bam": "Bambara",
    "bbj": "Ghomala'",
    "ewe": "Ewe",
    "fon": "Fon",
    "hau": "Hausa",
    "ibo": "Igbo",
    "kin": "Kinyarwanda",
    "lin": "Lingala",
    "lug": "Luganda",
    "luo": "Dholuo",
    "mos": "Mossi",
    "nya": "Chichewa",
    "pcm": "Nigerian Pidgin",
    "sna": "Shona",
    "swa": "Swahili",
    "tsn": "Setswana",
    "twi": "Twi",
    "wol": "Wolof",
    "xho": "isiXhosa",
    "yor": "Yoruba",
    "zul": "isiZulu",
    "orm": "Oromo",
    # the 15 further languages of the raw data
    "tir": "Tigrinya",
    "som": "Somali",
    "afr": "Afrikaans",
    "nso": "Sepedi",
    "sot": "Sesotho",
    "run": "Kirundi",
    "kik": "Gikuyu",
    "mlg": "Malagasy",
    "gaa": "Ga",
    "fub": "Adamawa Fulfulde",
    "ssw": "siSwati",
    "nbl": "isiNdebele (South)",
    "tso": "Xitsonga",
    "ven": "Tshivenda",
    "aar": "Afar",
    # pivots and relatives that parallel sources and evaluation sets carry
    "eng": "English",
    "fra": "French",
    "ara": "Arabic",
    "por": "Portuguese",
    "arq": "Algerian Arabic",
    "ary": "Moroccan Arabic",
    "fuv": "Nigerian Fulfulde",
    "gaz": "West Central Oromo",
    "tig": "Tigre",
}

FORMATS = ("lines", "tsv", "csv", "jsonl", "json_array", "js_json", "ces_xml", "xhtml", "tar", "xlsx")
INNER_FORMATS = tuple(f for f in FORMATS if f not in ("tar", "xlsx"))
LINE_SEPS = ("auto", "lf", "cr")
QUOTINGS = ("csv", "none", "line")

# Options that only make sense for some formats; naming one elsewhere is an error.
_FORMAT_OPTIONS = {
    "column": {"tsv", "csv", "xlsx"},
    "delimiter": {"tsv", "csv"},
    "quoting": {"tsv", "csv"},
    "header": {"lines", "tsv", "csv", "xlsx"},
    "field": {"jsonl", "json_array", "js_json"},
    "sheet": {"xlsx"},
    "element": {"ces_xml"},
    "block_first_line": {"lines"},
    "member": {"tar"},
    "inner_format": {"tar"},
}
_REQUIRED = {
    "tsv": "column",
    "csv": "column",
    "xlsx": "column",
    "jsonl": "field",
    "json_array": "field",
    "js_json": "field",
    "tar": "member",
}


class CatalogError(ConfigError):
    """A catalog entry is invalid or matches no file; the message names entry and field."""


@dataclass(frozen=True)
class SourceEntry:
    """One source of raw text. Field docs: docs/corpus-sources.md."""

    name: str  # unique key, used in stats and rejected samples
    path: str  # glob relative to data_dir; `**`, {a,b}, {40..66}
    format: str  # one of FORMATS
    lang: str  # ISO 639-3 code of the text (KNOWN_LANGS)
    column: str | int | None = None  # tsv/csv/xlsx: header name, or 1-based position
    field: str | None = None  # json*: dotted path from the root; `*` = every item
    delimiter: str | None = None  # tsv: TAB, csv: "," unless given
    header: bool | None = None  # first row is a header (csv/tsv/xlsx: yes; lines: no)
    quoting: str | None = None  # csv (multi-line quoted cells), none, line
    line_sep: str = "auto"  # auto (LF, CRLF, CR), lf, cr
    member: str | None = None  # tar: glob for member names
    inner_format: str = "lines"  # tar: format of the members
    sheet: str | int | None = None  # xlsx: sheet name or 1-based index (first)
    element: str = "seg"  # ces_xml: element holding one unit
    block_first_line: bool = False  # lines: keep only the first line of each block
    split_lines: bool = False  # split each value at line breaks into units
    split_regex: str | None = None  # split each value at matches (match removed)
    strip_regex: str | None = None  # remove matches from each unit
    optional: bool = False  # a path matching nothing is a counted skip
    enabled: bool = True  # false: kept for reference, never read by default
    max_unit_chars: int = DEFAULT_MAX_UNIT_CHARS  # longer units: rejected `too_long`
    max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES  # json/js/xlsx parsed whole
    max_expand_ratio: int = DEFAULT_MAX_EXPAND_RATIO  # decompressed/compressed: over = `bomb`
    max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES  # over = `too_large`
    licence: str = ""
    notes: str = ""

    @property
    def quoting_mode(self) -> str:
        return self.quoting or ("csv" if self.format == "csv" else "none")

    @property
    def delimiter_char(self) -> str:
        return self.delimiter or ("," if self.format == "csv" else "\t")

    @property
    def has_header(self) -> bool:
        return self.header if self.header is not None else self.format in ("tsv", "csv", "xlsx")

    @property
    def unit_format(self) -> str:
        """The format of the text itself (a tar's members, else the entry's)."""
        return self.inner_format if self.format == "tar" else self.format


_FIELDS = {f.name: f for f in dataclasses.fields(SourceEntry)}
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(SourceEntry) if f.default is not dataclasses.MISSING}


def _fail(entry: str, field: str, message: str) -> CatalogError:
    return CatalogError(f"catalog entry {entry!r}, field {field!r}: {message}")


def _check_type(name: str, key: str, value: Any) -> None:
    expected = {
        "column": (str, int),
        "sheet": (str, int),
        "header": (bool,),
        "optional": (bool,),
        "enabled": (bool,),
        "split_lines": (bool,),
        "block_first_line": (bool,),
        "max_unit_chars": (int,),
        "max_document_bytes": (int,),
        "max_expand_ratio": (int,),
        "max_decompressed_bytes": (int,),
    }.get(key, (str,))
    if value is None and _DEFAULTS.get(key, 0) is None:
        return
    if isinstance(value, bool) and bool not in expected:
        raise _fail(name, key, f"expected {'/'.join(t.__name__ for t in expected)}, got {value!r}")
    if not isinstance(value, expected):
        raise _fail(name, key, f"expected {'/'.join(t.__name__ for t in expected)}, got {value!r}")


def _validate(entry: SourceEntry, given: set[str]) -> None:
    _validate_kind(entry, given)
    _validate_options(entry)


def _validate_kind(entry: SourceEntry, given: set[str]) -> None:
    """Language, format, and the options the format needs or forbids."""
    name = entry.name
    if entry.lang not in KNOWN_LANGS:
        raise _fail(
            name,
            "lang",
            f"unknown ISO 639-3 code {entry.lang!r} "
            f"(known: {' '.join(sorted(KNOWN_LANGS))}; add it to KNOWN_LANGS in "
            "pipeline/catalog.py if it is real)",
        )
    if entry.format not in FORMATS:
        raise _fail(name, "format", f"unknown format {entry.format!r} (one of {', '.join(FORMATS)})")
    if entry.format == "tar" and entry.inner_format not in INNER_FORMATS:
        raise _fail(name, "inner_format", f"{entry.inner_format!r} is not one of {', '.join(INNER_FORMATS)}")
    fmt = entry.unit_format
    for option, formats in _FORMAT_OPTIONS.items():
        if option in given and fmt not in formats and entry.format not in formats:
            raise _fail(name, option, f"does not apply to format {fmt!r}")
    for required in {_REQUIRED.get(entry.format), _REQUIRED.get(fmt)} - {None}:
        if getattr(entry, required) in (None, ""):
            raise _fail(name, required, f"format {fmt!r} needs a {required!r} option")


def _validate_options(entry: SourceEntry) -> None:
    """Values of the individual options."""
    name = entry.name
    if isinstance(entry.column, int) and entry.column < 1:
        raise _fail(name, "column", "positions are 1-based")
    if entry.format in ("tsv", "csv") and isinstance(entry.column, str) and not entry.has_header:
        raise _fail(name, "column", "a column name needs header: true (or give a 1-based position)")
    if entry.line_sep not in LINE_SEPS:
        raise _fail(name, "line_sep", f"{entry.line_sep!r} is not one of {LINE_SEPS}")
    if entry.quoting is not None and entry.quoting not in QUOTINGS:
        raise _fail(name, "quoting", f"{entry.quoting!r} is not one of {QUOTINGS}")
    if entry.delimiter is not None and len(entry.delimiter) != 1:
        raise _fail(name, "delimiter", f"must be one character, got {entry.delimiter!r}")
    for key in ("split_regex", "strip_regex"):
        pattern = getattr(entry, key)
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as err:
                raise _fail(name, key, f"bad regular expression: {err}") from None
    for key in ("max_unit_chars", "max_document_bytes", "max_expand_ratio", "max_decompressed_bytes"):
        if getattr(entry, key) < 1:
            raise _fail(name, key, "must be positive")
    if not entry.enabled and not entry.notes:
        raise _fail(name, "notes", "a disabled entry must say why in notes")


def parse_entry(raw: Any, index: int) -> SourceEntry:
    """One catalog mapping -> a validated `SourceEntry` (errors name the entry and field)."""
    label = raw.get("name", f"#{index + 1}") if isinstance(raw, dict) else f"#{index + 1}"
    if not isinstance(raw, dict):
        raise _fail(label, "-", f"expected a mapping, got {raw!r}")
    for key in raw:
        if key not in _FIELDS:
            raise _fail(label, key, f"unknown field (known: {', '.join(_FIELDS)})")
    for key in ("name", "path", "format", "lang"):
        if not raw.get(key):
            raise _fail(label, key, "required")
    for key, value in raw.items():
        _check_type(label, key, value)
    entry = SourceEntry(**raw)
    _validate(entry, set(raw))
    return entry


def load_catalog(
    path: str | Path = DEFAULT_CATALOG, data_dir: str | Path | None = None, include_disabled: bool = False
) -> list[SourceEntry]:
    """Parse and validate every entry (before any file is read); enabled ones by default.

    `data_dir` is accepted for symmetry with `expand_entry` (paths stay relative in entries).
    """
    del data_dir
    try:
        with uri.open_read(path) as handle:  # a local file or a URI (s3://...)
            doc = yaml.safe_load(handle.read().decode("utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise CatalogError(f"{path}: cannot read the catalog: {err}") from None
    raw_entries = doc.get("sources") if isinstance(doc, dict) else None
    if not isinstance(raw_entries, list):
        raise CatalogError(f"{path}: expected a top-level 'sources:' list")
    entries, seen = [], set()
    for index, raw in enumerate(raw_entries):
        entry = parse_entry(raw, index)
        if entry.name in seen:
            raise _fail(entry.name, "name", "duplicate entry name")
        seen.add(entry.name)
        entries.append(entry)
    return [e for e in entries if e.enabled or include_disabled]


_RANGE = re.compile(r"^(-?\d+)\.\.(-?\d+)$")


def _brace_options(body: str) -> list[str] | None:
    """Alternatives of one brace body (top-level commas or a numeric range), else None."""
    numeric = _RANGE.match(body)
    if numeric:
        lo, hi = int(numeric.group(1)), int(numeric.group(2))
        width = len(numeric.group(1)) if numeric.group(1).startswith("0") else 0
        step = 1 if hi >= lo else -1
        return [str(n).zfill(width) for n in range(lo, hi + step, step)]
    options, depth, last = [], 0, 0
    for i, char in enumerate(body):
        depth += {"{": 1, "}": -1}.get(char, 0)
        if char == "," and depth == 0:
            options.append(body[last:i])
            last = i + 1
    return options + [body[last:]] if options else None


def expand_braces(pattern: str) -> list[str]:
    """Shell-style `{a,b}`, nested `{a,{b,c}}` and `{40..66}` (zero padding kept), in order."""
    search_from = 0
    while (open_at := pattern.find("{", search_from)) >= 0:
        depth = 0
        for close_at in range(open_at, len(pattern)):
            depth += {"{": 1, "}": -1}.get(pattern[close_at], 0)
            if depth == 0:
                break
        else:
            return [pattern]  # unbalanced: a literal brace
        options = _brace_options(pattern[open_at + 1 : close_at])
        if options is None:
            search_from = open_at + 1
            continue
        head, tail = pattern[:open_at], pattern[close_at + 1 :]
        return [out for opt in options for out in expand_braces(head + opt + tail)]
    return [pattern]


def _join(data_dir: str | Path, path: str) -> str:
    from apache_beam.io.filesystems import FileSystems

    if "://" in path or os.path.isabs(path):
        return path
    return FileSystems.join(str(data_dir), path)


def expand_entry(entry: SourceEntry, data_dir: str | Path) -> list[str]:
    """The entry's files, sorted. Every brace alternative must match at least one file."""
    from apache_beam.io.filesystems import FileSystems

    found: set[str] = set()
    for pattern in expand_braces(entry.path):
        full = _join(data_dir, pattern)
        result = FileSystems.match([full])[0]
        files = {m.path for m in result.metadata_list if "://" in m.path or not os.path.isdir(m.path)}
        if not files:
            if entry.optional:
                continue
            raise _fail(
                entry.name,
                "path",
                f"{full!r} matches no file (fix the path, or set optional: true to count it as a skip)",
            )
        found |= files
    return sorted(found)
