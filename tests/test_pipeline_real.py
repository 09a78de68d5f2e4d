"""The corpus stage on the real data (needs pipeline/catalog.py and the readers)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from common.eval_sets import iter_items, split_file, task_registry
from pipeline.run import run
from pipeline.textkey import word_tokens

catalog = pytest.importorskip("pipeline.catalog", reason="needs the catalog and readers (branch corpus-readers)")

# The folders where the data README found MasakhaNER 1.0 test sentences.
LEAKY_FOLDERS = ("w_afrolm_mlm_al", "w_igbonlp", "w_lafand_mt", "w_yoruba_text")


def _leaky_sources(data_dir: Path) -> list[str]:
    """Entries of those folders in a MasakhaNER 1.0 language (keeps the test near 1-2 minutes)."""
    ner_langs = {p.name for p in (data_dir / "eval" / "masakhaner1").iterdir() if p.is_dir()}
    entries = catalog.load_catalog(catalog.DEFAULT_CATALOG, data_dir)
    return sorted(e.name for e in entries if e.lang in ner_langs and any(folder in e.path for folder in LEAKY_FOLDERS))


def _normalised(text: str) -> str:
    return " " + " ".join(word_tokens(text)) + " "


def test_no_masakhaner1_test_sentence_survives(data_dir, tmp_path):
    sources = _leaky_sources(data_dir)
    assert sources, "no catalog entry reads the folders that hold MasakhaNER 1.0 test text"
    out = tmp_path / "out"
    run(
        [
            f"data_dir={data_dir}",
            f"out_dir={out}",
            f"sources=[{', '.join(sources)}]",
            "minhash.enabled=false",
            "decontam.sets=[masakhaner1]",
        ]
    )  # default runner: 2 processes
    stats = json.loads((out / "stats.json").read_text())
    assert sum(n.get("masakhaner1", 0) for n in stats["decontamination"].values()) > 0
    # Independent check: substring search of each normalised test sentence in the kept text.
    kept = "\n".join(
        _normalised(json.loads(line)["text"])
        for shard in sorted(out.rglob("*.jsonl.gz"))
        for line in gzip.open(shard, "rt", encoding="utf-8")
    )
    ner = task_registry()["masakhaner1"]
    tests = [
        _normalised(item.text)
        for lang in ner.langs
        if split_file(ner, lang, "test", data_dir).is_file()
        for item in iter_items(ner, lang, "test", data_dir)
        if len(word_tokens(item.text)) >= 5
    ]
    assert len(tests) > 4000
    survivors = [t for t in tests if t in kept]
    assert survivors == []


@pytest.mark.slow
def test_full_corpus_run(data_dir, tmp_path):
    manifest = run([f"data_dir={data_dir}", f"out_dir={tmp_path / 'out'}"])
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert len([lang for lang, e in stats["languages"].items() if e["kept"] > 0]) >= 28
    assert manifest["totals"]["kept"] > 0
