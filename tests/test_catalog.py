"""Catalog loading, validation, file expansion and --check."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
import yaml

from pipeline.catalog import (
    DEFAULT_CATALOG,
    KNOWN_LANGS,
    CatalogError,
    SourceEntry,
    expand_braces,
    expand_entry,
    load_catalog,
)
from pipeline.catalog_check import main

GOOD = {"name": "yor_lines", "path": "mono/*.txt", "format": "lines", "lang": "yor"}


def write_catalog(tmp_path: Path, *entries: dict) -> Path:
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump({"sources": list(entries)}, allow_unicode=True), encoding="utf-8")
    return path


def test_valid_catalog_loads_with_defaults(tmp_path):
    entries = load_catalog(
        write_catalog(
            tmp_path,
            GOOD,
            {"name": "lafand_hau", "path": "mono/x.json", "format": "jsonl", "lang": "hau", "field": "translation.hau"},
        ),
        tmp_path,
    )
    assert [e.name for e in entries] == ["yor_lines", "lafand_hau"]
    first = entries[0]
    assert isinstance(first, SourceEntry)
    assert (first.line_sep, first.has_header, first.optional, first.enabled) == ("auto", False, False, True)
    assert entries[1].field == "translation.hau"


@pytest.mark.parametrize(
    "change, field, words",
    [
        ({"lang": "aaf"}, "lang", "unknown ISO 639-3 code 'aaf'"),
        ({"lang": "xx"}, "lang", "unknown ISO 639-3"),
        ({"format": "parquet"}, "format", "unknown format 'parquet'"),
        ({"format": "csv"}, "column", "needs a 'column'"),
        ({"format": "tsv", "column": 0}, "column", "1-based"),
        ({"format": "jsonl"}, "field", "needs a 'field'"),
        ({"format": "js_json", "field": ""}, "field", "needs a 'field'"),
        ({"format": "tar", "inner_format": "lines"}, "member", "needs a 'member'"),
        ({"format": "tar", "member": "*.txt", "inner_format": "xlsx"}, "inner_format", "is not one of"),
        ({"format": "tar", "member": "*.csv", "inner_format": "csv"}, "column", "needs a 'column'"),
        ({"column": "text"}, "column", "does not apply to format 'lines'"),
        ({"colum": "text"}, "colum", "unknown field"),
        ({"line_sep": "crlf"}, "line_sep", "is not one of"),
        ({"strip_regex": "(["}, "strip_regex", "bad regular expression"),
        ({"optional": "yes"}, "optional", "expected bool"),
        ({"enabled": False}, "notes", "must say why"),
        ({"format": "csv", "column": "text", "header": False}, "column", "needs header: true"),
    ],
)
def test_bad_entry_is_an_error_naming_entry_and_field_row22(tmp_path, change, field, words):
    entry = {**GOOD, "name": "bad_one", **change}
    with pytest.raises(CatalogError) as err:
        load_catalog(write_catalog(tmp_path, GOOD | {"name": "fine"}, entry), tmp_path)
    message = str(err.value)
    assert "'bad_one'" in message and f"field '{field}'" in message and words in message


def test_duplicate_names_and_missing_required_row22(tmp_path):
    with pytest.raises(CatalogError, match=r"'yor_lines', field 'name': duplicate"):
        load_catalog(write_catalog(tmp_path, GOOD, GOOD), tmp_path)
    with pytest.raises(CatalogError, match=r"field 'lang': required"):
        load_catalog(write_catalog(tmp_path, {k: v for k, v in GOOD.items() if k != "lang"}), tmp_path)
    broken = tmp_path / "broken.yaml"
    broken.write_text("sources:\n- name: a\n  notes: x: y\n", encoding="utf-8")
    with pytest.raises(CatalogError, match="cannot read the catalog"):
        load_catalog(broken, tmp_path)


def test_disabled_entries_are_left_out_unless_asked(tmp_path):
    path = write_catalog(tmp_path, GOOD, GOOD | {"name": "copy", "enabled": False, "notes": "same as yor_lines"})
    assert [e.name for e in load_catalog(path, tmp_path)] == ["yor_lines"]
    assert [e.name for e in load_catalog(path, tmp_path, include_disabled=True)] == ["yor_lines", "copy"]


def test_expand_braces():
    assert expand_braces("a/{x,y}/b{1..3}.js") == [
        "a/x/b1.js",
        "a/x/b2.js",
        "a/x/b3.js",
        "a/y/b1.js",
        "a/y/b2.js",
        "a/y/b3.js",
    ]
    assert expand_braces("{08..10}") == ["08", "09", "10"]
    assert expand_braces("{a,{b,c}}.txt") == ["a.txt", "b.txt", "c.txt"]
    assert expand_braces("plain{}.txt") == ["plain{}.txt"]


def test_expand_entry_globs_sorted_with_geez_spaces_and_braces(tmp_path):
    base = tmp_path / "mono" / "ጋዜጣዎች" / "ልሳነ፡ሕዝብ"
    for rel in ("1997/ሰኔ/b.html", "1996/a file (1).html", "1997/c.html"):
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / rel).write_text("<p>x</p>", encoding="utf-8")
    entry = SourceEntry(name="enh", path="mono/ጋዜጣዎች/**/*.html", format="xhtml", lang="amh")
    files = expand_entry(entry, tmp_path)
    assert [Path(f).name for f in files] == ["a file (1).html", "c.html", "b.html"]
    assert files == sorted(files)
    braces = SourceEntry(name="b", path="mono/ጋዜጣዎች/ልሳነ፡ሕዝብ/{1996,1997}/*.html", format="xhtml", lang="amh")
    assert len(expand_entry(braces, tmp_path)) == 2


def test_path_matching_nothing_is_an_error_or_counted_skip_row23(tmp_path):
    (tmp_path / "mono").mkdir()
    (tmp_path / "mono" / "a.txt").write_text("x\n", encoding="utf-8")
    missing = SourceEntry(name="ghost_source", path="mono/nothing/*.txt", format="lines", lang="hau")
    with pytest.raises(CatalogError, match=r"'ghost_source', field 'path'.*matches no file"):
        expand_entry(missing, tmp_path)
    assert expand_entry(SourceEntry(**{**missing.__dict__, "optional": True}), tmp_path) == []
    # every brace alternative must match: a missing book is not silently dropped
    partly = SourceEntry(name="partly", path="mono/{a,b}.txt", format="lines", lang="hau")
    with pytest.raises(CatalogError, match=r"'partly'.*b\.txt"):
        expand_entry(partly, tmp_path)


def test_check_command_prints_table_and_fails_cleanly(tmp_path, capsys):
    (tmp_path / "mono").mkdir()
    (tmp_path / "mono" / "yo.txt").write_bytes("Ẹ kú àárọ̀\r\n".encode() + b"bad \xff byte\r\n")
    path = write_catalog(tmp_path, GOOD)
    assert main(["--check", "--catalog", str(path), f"data_dir={tmp_path}"]) == 0
    out = capsys.readouterr()
    row = next(line for line in out.out.splitlines() if line.startswith("yor_lines"))
    assert row.split()[3:6] == ["1", "2", "1"] and "decode=1" in row
    assert "[1/1] yor_lines" in out.err
    bad = write_catalog(tmp_path, GOOD | {"lang": "yo"})
    assert main(["--catalog", str(bad), f"data_dir={tmp_path}"]) == 2
    assert "'yor_lines', field 'lang'" in capsys.readouterr().err


# ---------------------------------------------------------------- the real catalog


def test_real_catalog_validates_and_every_entry_matches(data_dir):
    entries = load_catalog(DEFAULT_CATALOG, data_dir, include_disabled=True)
    assert len({e.lang for e in entries}) >= 38
    for entry in entries:
        assert entry.optional or expand_entry(entry, data_dir), entry.name


def test_every_monolingual_file_is_reachable(data_dir):
    """Each file of mono/ (bar licences, SOURCES.tsv, bible-tools info.js) is in some entry."""
    mono = data_dir / "mono"
    reached = {
        Path(f)
        for e in load_catalog(DEFAULT_CATALOG, data_dir, include_disabled=True)
        for f in expand_entry(e, data_dir)
    }
    skipped = {"LICENSE", "LICENSE.md", "SOURCES.tsv", "info.js"}
    files = {p for p in mono.rglob("*") if p.is_file() and p.name not in skipped}
    assert len(files) > 1000
    assert sorted(map(str, files - reached)) == []
    # and every SOURCES.tsv row's language appears in the catalog
    with open(mono / "SOURCES.tsv", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    assert len(rows) == 80
    catalog_langs = {e.lang for e in load_catalog(DEFAULT_CATALOG, data_dir, include_disabled=True)}
    for row in rows:
        codes = set(re.findall(r"\b[a-z]{3}\b", row["languages"])) & set(KNOWN_LANGS)
        assert codes - {"eng", "fra", "ara", "fuv", "gaz"} <= catalog_langs, row["path"]
