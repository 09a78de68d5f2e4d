"""Check the source catalog: validate it and (with --check) read every entry's files.

    python -m pipeline.catalog_check [--check] [--only REGEX] data_dir=../shared/data

prints files matched, units read and rejects by reason per entry and per language (for users
adding a source). Kept apart from pipeline/catalog.py, which the readers import.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from pipeline.catalog import DEFAULT_CATALOG, DEFAULT_DATA_DIR, CatalogError, SourceEntry, expand_entry, load_catalog
from pipeline.readers import read_file


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.catalog_check",
        description="Validate the source catalog and (with --check) read every entry, "
        "printing files matched, units read and rejects by reason.",
    )
    parser.add_argument("--check", action="store_true", help="read every entry's files")
    parser.add_argument("--catalog", default=str(DEFAULT_CATALOG), help="catalog YAML")
    parser.add_argument("--include-disabled", action="store_true", help="also read entries marked enabled: false")
    parser.add_argument("--only", default=None, help="regex on entry names to check")
    parser.add_argument("overrides", nargs="*", help="data_dir=PATH (default ../shared/data)")
    args = parser.parse_args(argv)
    args.data_dir = DEFAULT_DATA_DIR
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if key != "data_dir" or not sep:
            parser.error(f"unknown setting {item!r} (only data_dir=PATH)")
        args.data_dir = value
    return args


def check_entry(entry: SourceEntry, data_dir: str | Path) -> dict[str, Any]:
    """Read one entry fully; counts of files, units, text units and rejects by reason."""
    files = expand_entry(entry, data_dir)
    reasons: Counter[str] = Counter()
    units = chars = 0
    for path in files:
        for unit in read_file(entry, path):
            units += 1
            if unit.text is None:
                reasons[unit.reason or "?"] += 1
            else:
                chars += len(unit.text)
    return {
        "files": len(files),
        "units": units,
        "text": units - sum(reasons.values()),
        "chars": chars,
        "rejected": dict(sorted(reasons.items())),
    }


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        entries = load_catalog(args.catalog, args.data_dir, include_disabled=args.include_disabled)
    except CatalogError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{args.catalog}: {len(entries)} entries valid", file=sys.stderr)
    if not args.check:
        return 0
    if args.only:
        entries = [e for e in entries if re.search(args.only, e.name)]
    start = time.time()
    rows, by_lang = [], defaultdict(Counter)
    for i, entry in enumerate(entries, 1):
        try:
            stats = check_entry(entry, args.data_dir)
        except CatalogError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        rows.append((entry, stats))
        by_lang[entry.lang].update(units=stats["units"], text=stats["text"], chars=stats["chars"])
        print(
            f"[{i}/{len(entries)}] {entry.name}: {stats['files']} files, {stats['units']} units "
            f"({time.time() - start:.1f}s)",
            file=sys.stderr,
            flush=True,
        )
    print(f"{'entry':42} {'lang':4} {'format':10} {'files':>5} {'units':>8} {'text':>8}  rejected")
    for entry, s in rows:
        rejected = ", ".join(f"{k}={v}" for k, v in s["rejected"].items()) or "-"
        print(
            f"{entry.name:42} {entry.lang:4} {entry.format:10} {s['files']:>5} "
            f"{s['units']:>8} {s['text']:>8}  {rejected}"
        )
    print(f"\n{'lang':4} {'units':>8} {'text':>8} {'Mchars':>7}")
    for lang in sorted(by_lang):
        c = by_lang[lang]
        print(f"{lang:4} {c['units']:>8} {c['text']:>8} {c['chars'] / 1e6:>7.2f}")
    print(f"\n{len(rows)} entries, {len(by_lang)} languages, {time.time() - start:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
