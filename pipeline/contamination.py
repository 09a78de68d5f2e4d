"""Audit a corpus against every registered evaluation set: which dev/test items it still holds.

    python -m pipeline.contamination [corpus_dir=out/corpus] [data_dir=../shared/data]
        [tasks_file=my_sets.yaml] [samples=5]

Every line of the corpus (train and valid shards) is matched against the dev and test items of
every evaluation set in the registry (common/eval_sets.yaml, plus `tasks_file`) under two keys:
- **exact**: word 8-grams (or whole items of 5-7 words) of the NFC, casefolded words, every
  combining mark kept: what a plain substring search of the normalised text would find;
- **folded**: the decontamination key (pipeline/decontam.py): marks, hooked letters and
  apostrophes folded away, plus the letters check that survives elision and re-spacing.
It writes `contamination.json` (per set and language: items, items overlapped under each key,
sample pairs of test item, corpus line and source) and `contamination.md` beside the corpus,
and prints the table. A corpus cleaned against a set shows 0 under the folded key for it; the
exact column shows what a weaker cleaner would have let through.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from common import corpus, uri
from common.cli import Command
from common.config import ConfigError, config_to_dict
from common.eval_sets import TaskSpec, iter_items, split_file, task_registry
from common.io import atomic_write, write_json
from pipeline.config import DecontamConfig
from pipeline.decontam import EvalIndex
from pipeline.textkey import word_tokens

log = logging.getLogger("contamination")
KEYS = ("exact", "folded")
SAMPLE_CHARS = 300


@dataclass
class AuditConfig:
    """Settings of the audit; `decontam` holds the folded key's thresholds."""

    corpus_dir: Path = Path("out/corpus")
    data_dir: Path = Path("../shared/data")
    tasks_file: Path | None = None
    custom_tasks: list[TaskSpec] = field(default_factory=list)
    splits: list[str] = field(default_factory=lambda: ["dev", "test"])
    samples: int = 5  # sample pairs kept per evaluation set and key
    decontam: DecontamConfig = field(default_factory=DecontamConfig)

    def __post_init__(self) -> None:
        if self.samples < 0:
            raise ConfigError(f"samples must be >= 0, got {self.samples}")
        bad = sorted(set(self.splits) - {"train", "dev", "test"})
        if bad:
            raise ConfigError(f"splits: unknown split(s) {bad}; use train/dev/test")


def build_indexes(cfg: AuditConfig) -> dict[str, EvalIndex]:
    """One index per key over the same items (files a set declares but the data lacks are skipped)."""
    try:
        registry = task_registry(cfg.tasks_file, cfg.custom_tasks)
    except (FileNotFoundError, ValueError) as err:
        raise ConfigError(str(err)) from None
    indexes = {"exact": EvalIndex(cfg.decontam, words=word_tokens, letters=False), "folded": EvalIndex(cfg.decontam)}
    seen = set()
    for task in registry.values():
        for lang in task.langs:
            for split in cfg.splits:
                path = split_file(task, lang, split, cfg.data_dir)
                if path is None or not uri.exists(path) or (str(path), task.name) in seen:
                    continue
                seen.add((str(path), task.name))
                for item in iter_items(task, lang, split, cfg.data_dir):
                    for index in indexes.values():
                        index.add(item)
    return indexes


def _item_key(item) -> tuple:
    return item.eval_set, item.lang, item.split, item.where


def audit(cfg: AuditConfig) -> dict:
    start = time.time()
    indexes = build_indexes(cfg)
    log.info("indexed %s in %.0fs", indexes["folded"].describe(), time.time() - start)
    hits = {key: {} for key in KEYS}  # key -> item key -> first (line record, how)
    lines = 0
    for lang in corpus.list_languages(cfg.corpus_dir):
        for split in ("train", "valid"):
            for record in corpus.iter_records(cfg.corpus_dir, lang, split):
                lines += 1
                for key, index in indexes.items():
                    for match in index.matches(record["text"]):
                        hits[key].setdefault(
                            _item_key(index.items[match.item]), (record, split, match.how, index.items[match.item])
                        )
        log.info(
            "%s scanned: %d corpus lines so far, %d items overlapped under the folded key (%.0fs)",
            lang,
            lines,
            len(hits["folded"]),
            time.time() - start,
        )
    return summarise(cfg, indexes, hits, lines)


def summarise(cfg: AuditConfig, indexes: dict[str, EvalIndex], hits: dict, lines: int) -> dict:
    totals = defaultdict(lambda: {"items": 0, **{k: 0 for k in KEYS}})
    for item in indexes["folded"].items:
        totals[(item.eval_set, item.lang)]["items"] += 1
    samples = defaultdict(list)
    for key in KEYS:
        for (eval_set, lang, split, where), (record, shard, how, item) in sorted(hits[key].items()):
            totals[(eval_set, lang)][key] += 1
            if len([s for s in samples[eval_set] if s["key"] == key]) < cfg.samples:
                samples[eval_set].append(
                    {
                        "key": key,
                        "how": how,
                        "lang": lang,
                        "split": split,
                        "item": item.text[:SAMPLE_CHARS],
                        "item_where": where,
                        "line": record["text"][:SAMPLE_CHARS],
                        "line_id": record.get("id", ""),
                        "source": record.get("source", ""),
                        "shard": shard,
                    }
                )
    rows = [{"set": s, "lang": l, **counts} for (s, l), counts in sorted(totals.items())]
    return {
        "config": config_to_dict(cfg),
        "corpus_lines": lines,
        "rows": rows,
        "total": {k: sum(r[k] for r in rows) for k in ("items", *KEYS)},
        "samples": dict(sorted(samples.items())),
    }


def markdown(result: dict) -> str:
    out = [
        "# Contamination audit",
        "",
        f"{result['corpus_lines']:,} corpus lines against {result['total']['items']:,} dev/test items "
        f"of {len({r['set'] for r in result['rows']})} evaluation sets. An item counts once it shares a "
        "word 8-gram (or, under 5-7 words, its whole word sequence) with a corpus line; `folded` also "
        "folds marks, hooks and apostrophes and checks letters (pipeline/decontam.py).",
        "",
        "| set | lang | items | exact | folded |",
        "|---|---|---:|---:|---:|",
    ]
    out += [
        f"| {r['set']} | {r['lang']} | {r['items']:,} | {r['exact']:,} | {r['folded']:,} |"
        for r in result["rows"]
        if r["exact"] or r["folded"]
    ]
    t = result["total"]
    out += [f"| **total** | | {t['items']:,} | {t['exact']:,} | {t['folded']:,} |", ""]
    clean = sorted({r["set"] for r in result["rows"]} - {r["set"] for r in result["rows"] if r["exact"] or r["folded"]})
    if clean:
        out += [f"No item overlapped under either key: {', '.join(clean)}.", ""]
    for eval_set, pairs in result["samples"].items():
        out += [f"## {eval_set}", ""]
        for p in pairs:
            out += [
                f"- {p['key']} ({p['how']}), {p['lang']} {p['split']} `{p['item_where']}`",
                f"  - item: {p['item']}",
                f"  - corpus ({p['source']}, {p['shard']}): {p['line']}",
            ]
        out.append("")
    return "\n".join(out)


COMMAND = Command(AuditConfig, "python -m pipeline.contamination", __doc__)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    return COMMAND.run(argv, lambda cfg, args: write_audit(cfg))


def write_audit(cfg: AuditConfig) -> None:
    if not (Path(cfg.corpus_dir) / "manifest.json").is_file():
        raise FileNotFoundError(f"{cfg.corpus_dir} has no complete corpus (manifest.json); run `make corpus`")
    result = audit(cfg)
    write_json(Path(cfg.corpus_dir) / "contamination.json", result)
    with atomic_write(Path(cfg.corpus_dir) / "contamination.md") as handle:
        handle.write(markdown(result))
    t = result["total"]
    print("\n".join(markdown(result).split("\n\n## ")[0].splitlines()[4:]))
    print(
        f"contamination: {t['exact']} items overlap under the exact key, {t['folded']} under the folded key "
        f"-> {cfg.corpus_dir}/contamination.md"
    )


if __name__ == "__main__":
    sys.exit(main())
