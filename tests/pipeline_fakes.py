"""A minimal catalog + `lines` reader for the corpus-stage tests (the real ones live in
pipeline/catalog.py and pipeline/readers/, built on another branch). Same interface:
`load_catalog(path, data_dir)`, `expand_entry(entry, data_dir)`, `read_file(entry, path)`."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import yaml

from pipeline.records import RawLine


@dataclass(frozen=True)
class SourceEntry:
    name: str
    lang: str
    path: str
    format: str = "lines"


def load_catalog(path, data_dir) -> list[SourceEntry]:
    rows = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    entries = [SourceEntry(**row) for row in rows]
    for entry in entries:
        if entry.format != "lines":
            raise ValueError(f"{path}: entry {entry.name}: unknown format {entry.format!r}")
    return entries


def expand_entry(entry: SourceEntry, data_dir) -> list[str]:
    return sorted(str(p) for p in Path(data_dir).glob(entry.path))


def read_file(entry: SourceEntry, path: str) -> Iterator[RawLine]:
    with open(path, "rb") as handle:
        data = handle.read()
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            yield RawLine(entry.name, entry.lang, path, number, None, "decode", repr(raw[:200]))
            continue
        yield RawLine(entry.name, entry.lang, path, number, text)


def write_catalog(folder: Path, entries: list[dict]) -> Path:
    path = folder / "catalog.yaml"
    path.write_text(yaml.safe_dump(entries, allow_unicode=True), encoding="utf-8")
    return path
