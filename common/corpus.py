"""Read the corpus stage's outputs: shards, stats.json, the corpus hash (docs/interfaces.md).

The corpus stage (pipeline/) writes them; every other stage reads them through here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, TypedDict

from common.formats import need, read_json
from common.io import read_jsonl, read_manifest

STATS = "stats.json"


def list_languages(corpus_dir: str | Path) -> list[str]:
    """Languages that have at least one train shard, sorted."""
    corpus_dir = Path(corpus_dir)
    return sorted(p.name for p in corpus_dir.iterdir() if p.is_dir() and any(p.glob("train-*.jsonl.gz")))


def shard_paths(corpus_dir: str | Path, lang: str, split: str) -> list[Path]:
    return sorted((Path(corpus_dir) / lang).glob(f"{split}-*.jsonl.gz"))


def iter_records(corpus_dir: str | Path, lang: str, split: str = "train") -> Iterator[dict]:
    for path in shard_paths(corpus_dir, lang, split):
        yield from read_jsonl(path)


def iter_texts(corpus_dir: str | Path, lang: str, split: str = "train") -> Iterator[str]:
    for record in iter_records(corpus_dir, lang, split):
        yield record["text"]


def corpus_hash(corpus_dir: str | Path) -> str:
    """The hash the corpus stage recorded for its outputs; downstream cache keys use it."""
    manifest = read_manifest(corpus_dir)
    if manifest is None or "corpus_hash" not in manifest:
        raise FileNotFoundError(
            f"{corpus_dir} has no complete corpus (manifest.json with corpus_hash); run `make corpus`"
        )
    return manifest["corpus_hash"]


class Counts(TypedDict):
    """Text units (lines after splitting) and bytes of one source, one language or the total."""

    records: int  # what the readers yielded
    bytes_read: int
    read: int  # units entering cleaning: read = kept + dropped
    read_bytes: int
    kept: int
    kept_bytes: int
    train: int  # kept, by split
    valid: int
    dropped: int
    dropped_bytes: int
    dropped_by_reason: dict[str, int]
    decontaminated_by_eval_set: dict[str, int]


class LanguageStats(Counts, total=False):
    sources: dict[str, Counts]  # source folder -> its counts in this language


class CorpusStats(TypedDict):
    languages: dict[str, LanguageStats]
    total: Counts
    decontamination: dict[str, dict[str, int]]  # source -> evaluation set -> lines dropped


def read_stats(corpus_dir: str | Path) -> CorpusStats:
    """`<corpus_dir>/stats.json`, checked: every language has numeric read, kept and dropped, its
    drop reasons and the decontamination counts are numbers. FileNotFoundError without the
    file; `common.formats.FormatError` naming the file (and key) when it is not in this format."""
    path = Path(corpus_dir) / STATS
    stats = read_json(path)
    need(path, "top level", stats, ("languages",), kind=dict)
    for lang, entry in stats["languages"].items():
        need(path, f"languages.{lang}", entry, ("read", "kept", "dropped"))
        reasons = entry.get("dropped_by_reason", {})
        need(path, f"languages.{lang}.dropped_by_reason", reasons, tuple(reasons))
    for source, sets in stats.get("decontamination", {}).items():
        need(path, f"decontamination.{source}", sets, tuple(sets))
    return stats
