"""HTML building blocks. Every piece of text passes through `html.escape` here: corpus
samples, file paths and even language codes are data, never markup."""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path
from string import Template
from typing import Any, Iterable

from common.io import atomic_write
from report.figures import png_bytes


class Raw(str):
    """Already-built HTML (a table, a figure); `cell` and `join` leave it as it is."""


def esc(value: Any) -> str:
    return value if isinstance(value, Raw) else html.escape(str(value), quote=True)


def num(value: Any, digits: int = 2) -> str:
    """Integers with thousands separators, floats with `digits` decimals, '-' when missing."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:,}" if isinstance(value, int) else f"{value:,.{digits}f}"


def pct(part: float, whole: float, digits: int = 1) -> str:
    return f"{100.0 * part / whole:.{digits}f}%" if whole else "-"


def table(headers: list[str], rows: Iterable[list[Any]], numeric_from: int = 1, cls: str = "") -> Raw:
    """Columns from `numeric_from` on are right-aligned (numbers)."""
    head = "".join(f"<th{' class=num' if i >= numeric_from else ''}>{esc(h)}</th>" for i, h in enumerate(headers))
    body = []
    for row in rows:
        cells = "".join(f"<td{' class=num' if i >= numeric_from else ''}>{esc(c)}</td>" for i, c in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    return Raw(
        f'<div class="scroll"><table class="{esc(cls)}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def para(text: Any, cls: str = "") -> Raw:
    return Raw(f"<p{f' class={esc(cls)}' if cls else ''}>{esc(text)}</p>")


def not_run(what: str, path: Path) -> Raw:
    return Raw(f'<p class="missing">not run yet: <code>{esc(path)}</code> ({esc(what)})</p>')


def error_box(message: str) -> Raw:
    return Raw(f'<div class="error"><strong>Could not read:</strong> {esc(message)}</div>')


def details(summary: str, body: str) -> Raw:
    return Raw(f"<details><summary>{esc(summary)}</summary>{body}</details>")


def pre(text: str) -> Raw:
    return Raw(f"<pre>{esc(text)}</pre>")


def join(parts: Iterable[Any]) -> Raw:
    return Raw("\n".join(esc(p) for p in parts if p))


def write_public(path: Path, data: str | bytes) -> None:
    """Atomic write, then readable by everyone (the temp file of `atomic_write` is 0600): a
    report is meant to be served or shared."""
    with atomic_write(path, "wb" if isinstance(data, bytes) else "w") as handle:
        handle.write(data)
    os.chmod(path, 0o644)


class FigureSink:
    """Renders figures to PNG once: written beside the HTML and embedded as data: URIs."""

    def __init__(self, folder: Path, dpi: int):
        self.folder, self.dpi = Path(folder), dpi
        self.written: list[Path] = []

    def add(self, name: str, fig, caption: str) -> Raw:
        data = png_bytes(fig, self.dpi)
        path = self.folder / f"{name}.png"
        write_public(path, data)
        self.written.append(path)
        uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        return Raw(
            f'<figure><img src="{uri}" alt="{esc(caption)}">'
            f"<figcaption>{esc(caption)} <span class=file>(figures/{esc(path.name)})</span>"
            "</figcaption></figure>"
        )


PAGE = Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title</title>
<style>
body { font-family: -apple-system, "Segoe UI", "Noto Sans", "Noto Sans Ethiopic", sans-serif;
       margin: 0 auto; max-width: 1300px; padding: 1em 2em; color: #212529; line-height: 1.4; }
h1 { border-bottom: 2px solid #343a40; padding-bottom: .2em; }
h2 { border-bottom: 1px solid #ced4da; margin-top: 2em; padding-bottom: .15em; }
h3 { margin-top: 1.4em; }
nav ul { columns: 3; }
.scroll { overflow-x: auto; margin: .6em 0; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #dee2e6; padding: 3px 8px; vertical-align: top; }
th { background: #f1f3f5; position: sticky; top: 0; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tbody tr:nth-child(even) { background: #f8f9fa; }
td { max-width: 60em; overflow-wrap: anywhere; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #e9ecef; }
figcaption { font-size: 13px; color: #495057; }
.file { color: #868e96; }
.missing { color: #6c757d; font-style: italic; background: #f8f9fa; padding: .5em .8em;
           border-left: 4px solid #adb5bd; }
.error { background: #fff5f5; border-left: 4px solid #c92a2a; padding: .5em .8em; margin: .5em 0; }
.meta { color: #495057; font-size: 14px; }
details { margin: .5em 0; }
summary { cursor: pointer; color: #1c7ed6; }
pre { background: #f8f9fa; padding: .6em; font-size: 12px; overflow-x: auto; }
code { font-size: 90%; }
</style>
</head>
<body>
<h1>$title</h1>
<p class="meta">$meta</p>
<nav><ul>$toc</ul></nav>
$body
</body>
</html>
""")


def page(title: str, meta: str, sections: list[tuple[str, str, str]]) -> str:
    """`sections`: (anchor id, heading, body HTML)."""
    toc = "".join(f'<li><a href="#{esc(sid)}">{esc(head)}</a></li>' for sid, head, _ in sections)
    body = "\n".join(
        f'<section id="{esc(sid)}"><h2>{esc(head)}</h2>\n{html_body}</section>' for sid, head, html_body in sections
    )
    return PAGE.substitute(title=esc(title), meta=esc(meta), toc=toc, body=body)
