"""Counting for stats.json: every line read is kept or dropped with a reason.

Counts are (count, bytes) pairs summed per key inside Beam:
- ("records", lang, source): what the readers yielded (Lines) and their UTF-8 bytes;
- ("read", lang, source): text units entering cleaning: the readers' drops + the splitter's units and
  its own drops (`too_long`, `empty`); this is the unit of account;
- ("kept", lang, source, split), counted per language by language_shards.WriteLanguage;
- ("dropped", lang, source, reason);
- ("decontam", lang, source, eval_set).
`build_stats` turns them into the nested stats.json and raises if read != kept + dropped
anywhere, naming the language and source.
"""

from __future__ import annotations

from collections import defaultdict

import apache_beam as beam
from apache_beam.transforms.combiners import TupleCombineFn


class AccountingError(RuntimeError):
    """Lines were lost or invented between reading and writing."""


class SumCounts(beam.PTransform):
    """PCollection[(key, (count, bytes))] -> summed per key."""

    def expand(self, pairs):
        return pairs | "Sum" >> beam.CombinePerKey(TupleCombineFn(sum, sum))


def _entry():
    return {
        "records": 0,
        "bytes_read": 0,
        "read": 0,
        "read_bytes": 0,
        "kept": 0,
        "kept_bytes": 0,
        "train": 0,
        "valid": 0,
        "dropped": 0,
        "dropped_bytes": 0,
        "dropped_by_reason": defaultdict(int),
        "decontaminated_by_eval_set": defaultdict(int),
    }


def _add(entry: dict, kind: str, name: str, count: int, size: int) -> None:
    if kind == "records":
        entry["records"] += count
        entry["bytes_read"] += size
    elif kind == "read":
        entry["read"] += count
        entry["read_bytes"] += size
    elif kind == "kept":
        entry["kept"] += count
        entry["kept_bytes"] += size
        entry[name] += count
    elif kind == "dropped":
        entry["dropped"] += count
        entry["dropped_bytes"] += size
        entry["dropped_by_reason"][name] += count
    elif kind == "decontam":
        entry["decontaminated_by_eval_set"][name] += count


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in sorted(value.items())}
    return value


def build_stats(counts: list[tuple[tuple, tuple[int, int]]]) -> dict:
    """Nest the summed counts per language, per source, and in total; check the accounting."""
    by_source: dict = defaultdict(_entry)
    for key, (count, size) in counts:
        kind, lang, source = key[:3]
        _add(by_source[(lang, source)], kind, key[3] if len(key) > 3 else "", count, size)
    bad = [
        f"{lang}/{source}: read {e['read']} != kept {e['kept']} + dropped {e['dropped']}"
        for (lang, source), e in sorted(by_source.items())
        if e["read"] != e["kept"] + e["dropped"]
    ]
    if bad:
        raise AccountingError("lines lost or duplicated between read and write: " + "; ".join(bad))
    languages: dict = defaultdict(lambda: {"sources": {}, **_entry()})
    total = _entry()
    for (lang, source), entry in sorted(by_source.items()):
        languages[lang]["sources"][source] = entry
        for target in (languages[lang], total):
            for name, value in entry.items():
                if isinstance(value, dict):
                    for sub, n in value.items():
                        target[name][sub] += n
                elif name != "sources":
                    target[name] += value
    decontam: dict = defaultdict(lambda: defaultdict(int))
    for (_lang, source), entry in by_source.items():
        for eval_set, n in entry["decontaminated_by_eval_set"].items():
            decontam[source][eval_set] += n
    return _plain({"languages": dict(languages), "total": total, "decontamination": decontam})
