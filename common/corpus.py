"""Read the corpus stage's shards (see docs/interfaces.md)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from common.io import read_jsonl, read_manifest


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


def read_stats(corpus_dir: str | Path) -> dict:
    return json.loads((Path(corpus_dir) / "stats.json").read_text(encoding="utf-8"))
