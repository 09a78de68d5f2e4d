"""Hostile corpus inputs (corrupt archives, huge lines): every one ends in a reject
with its own reason, nothing is written outside the stage's temp folder, memory stays bounded.

The archive and bomb cases run the reader in a subprocess whose working directory and TMPDIR
are empty folders, so that "nothing written anywhere" and the peak RSS (getrusage) are
measured for real, not inside pytest's own process.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from pipeline.catalog import SourceEntry, expand_entry
from pipeline.readers import read_file
from tests.support import MULTILINGUAL_LINES, REPO_ROOT

YOR = MULTILINGUAL_LINES["yor"]
AMH = MULTILINGUAL_LINES["amh"]
MB = 1 << 20

# Runs in the subprocess: warm up (imports allocate MBs), then read one file and
# report the units, how far the peak RSS grew while reading it (getrusage) and the peak of
# Python allocations while reading (tracemalloc: decompressed chunks, lines, csv fields).
_CHILD = """
import json, resource, sys, tracemalloc
from pipeline.catalog import SourceEntry
from pipeline.readers import read_stream
options = json.loads(sys.argv[2])
entry = SourceEntry(name="hostile", path="*", lang="yor", **options)
def read(entry, path):  # read_file without Beam's FileSystems (a slow import)
    with open(path, "rb") as stream:
        return [[u.text, u.reason, u.detail, u.path] for u in read_stream(entry, stream, path)]
read(SourceEntry(name="warm", path="*", format="lines", lang="yor"), sys.argv[3])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
tracemalloc.start()
units = read(entry, sys.argv[1])
traced_peak = tracemalloc.get_traced_memory()[1]
grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"units": units, "rss_growth_mb": grown_kb / 1024, "traced_peak_mb": traced_peak / 2**20}))
"""


def entry(fmt: str = "lines", lang: str = "yor", **options) -> SourceEntry:
    options.setdefault("path", "*")
    return SourceEntry(name=f"test_{fmt}", format=fmt, lang=lang, **options)


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def read_isolated(tmp_path: Path, path: Path, **options) -> dict:
    """Read `path` in a subprocess with empty cwd and TMPDIR; assert both stay empty and
    that nothing new appeared anywhere under tmp_path."""
    cwd, tmp = tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir(exist_ok=True)
    tmp.mkdir(exist_ok=True)
    warm = tmp_path / "warm.txt"
    warm.write_text("warm\n", encoding="utf-8")
    before = tree(tmp_path)
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), json.dumps(options), str(warm)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert tree(tmp_path) == before and not any(cwd.iterdir()) and not any(tmp.iterdir())
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(
        f"{path.name}: {len(result['units'])} units, peak RSS grew {result['rss_growth_mb']:.1f} MB, "
        f"traced peak {result['traced_peak_mb']:.1f} MB"
    )
    assert result["traced_peak_mb"] < 32  # chunks and one unit at a time, never the whole input
    result["reasons"] = [u[1] for u in result["units"]]
    result["texts"] = [u[0] for u in result["units"]]
    return result


def tar_bytes(members: list[tarfile.TarInfo | tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                archive.addfile(member)
            else:
                info = tarfile.TarInfo(member[0])
                info.size = len(member[1])
                archive.addfile(info, io.BytesIO(member[1]))
    return buffer.getvalue()


def special(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


# ---------------------------------------------------------------- archives


def test_tar_traversal_absolute_links_and_devices_rejected_never_written_row21(tmp_path):
    good = ("pcm/1_1.txt", "God tell Moses:\n".encode())
    hostile = [
        ("pcm/../../../evil.txt", b"owned\n"),
        ("/tmp/pcm/abs.txt", b"owned\n"),
        ("pcm/..\\..\\win.txt", b"owned\n"),
        ("C:\\pcm\\drive.txt", b"owned\n"),
        special("pcm/passwd.txt", tarfile.SYMTYPE, "/etc/passwd"),
        special("pcm/up.txt", tarfile.SYMTYPE, "../../../../etc/shadow"),
        special("pcm/hard.txt", tarfile.LNKTYPE, "pcm/1_1.txt"),
        special("pcm/tty.txt", tarfile.CHRTYPE),
        special("pcm/disk.txt", tarfile.BLKTYPE),
        special("pcm/pipe.txt", tarfile.FIFOTYPE),
        special("pcm/sub", tarfile.DIRTYPE),
    ]
    path = tmp_path / "pcm.tar.gz"
    path.write_bytes(gzip.compress(tar_bytes([good, *hostile])))
    result = read_isolated(tmp_path, path, format="tar", member="*")
    # the one regular member is read; each of the 10 hostile members is one reject;
    # a directory is no unit at all
    assert result["texts"][0] == "God tell Moses:"
    assert result["reasons"] == [None] + ["unsafe_member"] * 10
    raws = "\n".join(u[2] for u in result["units"][1:])
    for words in ("escapes the archive", "link to '/etc/passwd'", "link to 'pcm/1_1.txt'", "device or FIFO"):
        assert words in raws
    assert not Path("/tmp/pcm/abs.txt").exists() and not (tmp_path.parent / "evil.txt").exists()


@pytest.mark.parametrize("kind", ["gzip", "bz2", "xz"])
def test_tar_bomb_stopped_by_ratio_in_bounded_memory_row24(tmp_path, kind):
    """A tar member declared 64 GiB, of highly compressible text: stopped at 100x, one reject."""
    compress = {"gzip": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress}[kind]
    info = tarfile.TarInfo("clean/en_af/bomb.af")
    info.size = 64 << 30
    block = ((YOR[0] + "\n") * (4 * MB // len(YOR[0].encode()))).encode()
    packed = compress(block)
    # concatenated streams are one valid stream for all three formats: 16,384 x 4 MiB
    path = tmp_path / f"bomb.tar.{kind}"
    with open(path, "wb") as handle:
        handle.write(compress(info.tobuf(format=tarfile.GNU_FORMAT)))
        for _ in range(64):
            handle.write(packed)
    assert len(packed) * 100 < len(block)  # the ratio is far beyond 100x
    result = read_isolated(tmp_path, path, format="tar", member="clean/en_af/*.af")
    assert result["reasons"][-1] == "bomb" and set(result["reasons"][:-1]) == {None}
    assert "max_expand_ratio" in result["units"][-1][2]
    assert result["rss_growth_mb"] < 64  # it read a few MiB, never the 64 GiB


def test_gzip_bomb_ratio_and_size_limits_row24(tmp_path):
    block = ("ọ̀rọ̀ " * 200 + "\n").encode() * 4000  # ~5 MB of lines
    path = tmp_path / "speech.txt.gz"
    path.write_bytes(gzip.compress(block, 9) * 200)  # one file, 200 gzip members: ~1 GB
    result = read_isolated(tmp_path, path, format="lines")
    assert result["reasons"][-1] == "bomb" and set(result["reasons"][:-1]) == {None}
    assert result["texts"][0] == "ọ̀rọ̀ " * 200
    assert result["rss_growth_mb"] < 64
    # the same file with the ratio check off stops at the size limit instead
    sized = read_isolated(tmp_path, path, format="lines", max_expand_ratio=10**9, max_decompressed_bytes=8 * MB)
    assert sized["reasons"][-1] == "too_large" and set(sized["reasons"][:-1]) == {None}
    assert "max_decompressed_bytes" in sized["units"][-1][2]
    n_lines = 8 * MB // len(block.splitlines()[0])
    assert n_lines - 2 <= len(sized["units"]) - 1 <= n_lines + 1


def test_small_repetitive_gz_is_not_a_bomb(tmp_path):
    """100x is checked only past 1 MiB of output: a tiny repetitive file is legitimate."""
    path = tmp_path / "refrain.txt.gz"
    path.write_bytes(gzip.compress(((YOR[1] + "\n") * 5000).encode()))
    units = list(read_file(entry(), str(path)))
    assert [u.text for u in units] == [YOR[1]] * 5000


# ---------------------------------------------------------------- xlsx


def test_xlsx_that_is_not_a_zip_or_not_a_workbook_is_corrupt_file(tmp_path):
    cases = {
        "text.xlsx": "Ẹ kú àárọ̀ — not a workbook".encode(),
        "fake_zip_header.xlsx": b"PK\x03\x04" + bytes(range(256)) * 4,
        "empty.xlsx": b"",
    }
    plain_zip = io.BytesIO()
    with zipfile.ZipFile(plain_zip, "w") as archive:
        archive.writestr("hello.txt", "a zip, but no workbook inside")
    cases["zip_no_workbook.xlsx"] = plain_zip.getvalue()
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        units = list(read_file(entry("xlsx", column=1), str(tmp_path / name)))
        assert [u.reason for u in units] == ["corrupt_file"], name
        assert "not a readable xlsx workbook" in units[0].detail


def test_xlsx_zip_bomb_and_oversized_workbook(tmp_path):
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/sharedStrings.xml", "<sst>" + "<si><t>a</t></si>" * 2_000_000 + "</sst>")
    (tmp_path / "bomb.xlsx").write_bytes(bomb.getvalue())
    units = list(read_file(entry("xlsx", column=1), str(tmp_path / "bomb.xlsx")))
    assert [u.reason for u in units] == ["bomb"] and "zip bomb" in units[0].detail
    units = list(read_file(entry("xlsx", column=1, max_decompressed_bytes=MB), str(tmp_path / "bomb.xlsx")))
    assert [u.reason for u in units] == ["too_large"]
    # over max_document_bytes: too_long (was mis-reported as corrupt_file)
    units = list(read_file(entry("xlsx", column=1, max_document_bytes=1000), str(tmp_path / "bomb.xlsx")))
    assert [u.reason for u in units] == ["too_long"] and "max_document_bytes" in units[0].detail


def test_xlsx_with_broken_sheet_xml_is_corrupt_file_after_good_rows(tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    book = openpyxl.Workbook()
    for line in AMH:
        book.active.append([line])
    good = tmp_path / "good.xlsx"
    book.save(good)
    broken = io.BytesIO()
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(broken, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "xl/worksheets/sheet1.xml":
                data = data.replace(b"</sheetData>", b"<row r='9'><c><unclosed></sheetData>")
            dst.writestr(item, data)
    (tmp_path / "broken.xlsx").write_bytes(broken.getvalue())
    units = list(read_file(entry("xlsx", lang="amh", column=1, header=False), str(tmp_path / "broken.xlsx")))
    assert units[-1].reason == "corrupt_file"
    assert [u.text for u in units[:-1]] == AMH[: len(units) - 1]


# ---------------------------------------------------------------- deep and long


def test_json_nested_100000_levels_is_too_deep_not_a_crash(tmp_path):
    deep = "[" * 100_000 + "]" * 100_000
    (tmp_path / "d.jsonl").write_text(f'{{"t": "{YOR[0]}"}}\n{{"t": {deep}}}\n{{"t": "{YOR[1]}"}}\n', encoding="utf-8")
    units = list(read_file(entry("jsonl", field="t"), str(tmp_path / "d.jsonl")))
    assert [(u.text, u.reason) for u in units] == [(YOR[0], None), (None, "too_deep"), (YOR[1], None)]
    for fmt, body in (("json_array", deep), ("js_json", "var book = " + '{"a":' * 100_000 + "1" + "}" * 100_000)):
        (tmp_path / "d.json").write_text(body, encoding="utf-8")
        assert [u.reason for u in read_file(entry(fmt, field="*"), str(tmp_path / "d.json"))] == ["too_deep"]


def test_deep_xml_and_entity_bomb(tmp_path):
    deep = "<cesDoc><seg>" + "<a>" * 100_000 + AMH[0] + "</a>" * 100_000 + f"</seg><seg>{AMH[1]}</seg></cesDoc>"
    (tmp_path / "deep.xml").write_text(deep, encoding="utf-8")
    assert [u.text for u in read_file(entry("ces_xml", lang="amh"), str(tmp_path / "deep.xml"))] == AMH
    laughs = ['<!ENTITY l0 "ha">'] + [f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10)]
    bomb = f'<?xml version="1.0"?><!DOCTYPE d [{"".join(laughs)}]><cesDoc><seg>&l9;</seg></cesDoc>'
    (tmp_path / "bomb.xml").write_text(bomb, encoding="utf-8")
    units = list(read_file(entry("ces_xml"), str(tmp_path / "bomb.xml")))
    assert [u.reason for u in units] == ["bomb"] and "amplification" in units[0].detail
    # an external entity is never fetched
    xxe = '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><cesDoc><seg>a&x;</seg></cesDoc>'
    (tmp_path / "xxe.xml").write_text(xxe, encoding="utf-8")
    assert [u.reason for u in read_file(entry("ces_xml"), str(tmp_path / "xxe.xml"))] == ["malformed"]


def test_xhtml_unclosed_tag_over_many_lines_is_too_long_not_quadratic(tmp_path):
    """Was quadratic: HTMLParser rescanned the pending tag on every line (20,000 lines: 198 s)."""
    body = f"<html><body><p>{YOR[0]}</p><a " + "href\n" * 200_000 + f"><p>{YOR[1]}</p></body></html>"
    (tmp_path / "p.html").write_text(body, encoding="utf-8")
    units = list(read_file(entry("xhtml"), str(tmp_path / "p.html")))
    assert units[0].text == YOR[0] and units[-1].text == YOR[1]
    assert "too_long" in [u.reason for u in units]
    assert any("unclosed markup" in (u.detail or "") for u in units)


@pytest.mark.parametrize("fmt, quoted, rest_kept", [("csv", True, False), ("csv", False, False), ("tsv", False, True)])
def test_csv_field_of_50mb_is_too_long_in_bounded_memory_row24(tmp_path, fmt, quoted, rest_kept):
    path = tmp_path / f"big.{fmt}"
    cell = ("ọ̀rọ̀ " * 10_000 + ("\n" if quoted else " ")).encode()
    with open(path, "wb") as handle:
        handle.write(f"text\n{YOR[0]}\n".encode() + (b'"' if quoted else b""))
        for _ in range(50 * MB // len(cell) + 1):
            handle.write(cell)
        handle.write((b'"' if quoted else b"") + f"\n{YOR[1]}\n".encode())
    assert path.stat().st_size > 50 * MB
    result = read_isolated(tmp_path, path, format=fmt, column="text")
    assert result["texts"][0] == YOR[0] and result["reasons"][1] == "too_long"
    assert result["texts"][2:] == ([YOR[1]] if rest_kept else [])
    assert result["rss_growth_mb"] < 48  # bounded by max_unit_chars, not the 50 MB field


# ---------------------------------------------------------------- file names


NAMES = [
    "ልጁ በየቀኑ.txt",
    "Ọmọ náà ń lọ.txt",
    "ఒక పేరు.txt",
    "مرحبا بالعالم.txt",
    "👩‍🌾 farm 🙂.txt",
    "e\u0301 combining.txt",
    "\u202eevil\u202c.txt",
    "brackets [1] {a,b} *.txt",
    "new\nline.txt",
]


def test_file_names_in_any_script(tmp_path):
    folder = tmp_path / "names"
    folder.mkdir()
    for i, name in enumerate(NAMES):
        (folder / name).write_text(f"{YOR[i % 2]}\n", encoding="utf-8")
    raw_name = os.fsencode(folder) + b"/legacy \x93cp1252\x94.txt"  # not UTF-8 at all
    with open(raw_name, "wb") as handle:
        handle.write(f"{AMH[0]}\n".encode())
    files = expand_entry(entry(path="names/*"), tmp_path)
    assert len(files) == len(NAMES) + 1
    for path in files:
        units = list(read_file(entry(), path))
        assert len(units) == 1 and units[0].text in YOR + AMH, path
        units[0].path.encode("utf-8")  # always writable, even for the cp1252 name
    # names inside an archive, too
    archive = tmp_path / "names.tar"
    archive.write_bytes(tar_bytes([(f"d/{name}", f"{AMH[1]}\n".encode()) for name in NAMES]))
    units = list(read_file(entry("tar", member="d/*"), str(archive)))
    assert [u.text for u in units] == [AMH[1]] * len(NAMES)
    assert [u.path.rsplit("::d/", 1)[1] for u in units] == NAMES
