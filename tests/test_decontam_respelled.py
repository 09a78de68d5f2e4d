"""Decontamination against respelled evaluation text, on the real evaluation sets.

Real MasakhaNER test sentences, respelled as web pages write them (bench/respell.py), planted in
a raw source: every one is dropped and counted under its evaluation set, while held-out clean
text (a Bible and a dictionary's example sentences, which the news and tweet sets do not quote) loses no more
lines than the rate measured on the whole corpus (docs/corpus.md, "Decontamination").
"""

from __future__ import annotations

import json
import random


from bench.respell import RESPELLINGS, inside_paragraph
from common.eval_sets import iter_items, task_registry
from pipeline.config import DecontamConfig
from pipeline.decontam import EvalIndex
from pipeline.run import run
from pipeline.textkey import word_tokens
from tests.support.pipeline import fake_sources, run_args, write_catalog  # noqa: F401  (fixture)

# (set, language): tone-marked (yor, ibo, fon, ewe), hooked letters (hau), apostrophes (ibo, fon)
SOURCES = [
    ("masakhaner1", "yor"),
    ("masakhaner1", "ibo"),
    ("masakhaner2", "fon"),
    ("masakhaner2", "ewe"),
    ("masakhaner2", "hau"),
]
PER_RESPELLING = 4  # sentences per language and respelling
CLEAN_SOURCES = ("bible_corpus_ewe", "ffr_fon")
CLEAN_LINES = 1500  # per clean source
# Upper bound on clean lines lost, measured on the shared corpus (docs/corpus.md): lines the
# folded key drops beyond the exact key, over all corpus lines.
MEASURED_CLEAN_LOSS = 0.001


def _test_sentences(data_dir):
    registry = task_registry()
    return {
        (name, lang): [
            item.text for item in iter_items(registry[name], lang, "test", data_dir) if len(item.text.split()) >= 10
        ]
        for name, lang in SOURCES
    }


def _planted(data_dir) -> list[tuple[str, str, str]]:
    """(set, respelling, line): sentences the respelling changes, a few per language."""
    planted = []
    for (name, _lang), sentences in _test_sentences(data_dir).items():
        for respelling, respell in RESPELLINGS.items():
            changed = [respell(s) for s in sentences if respell(s) != s][:PER_RESPELLING]
            planted += [(name, respelling, line) for line in changed]
    return planted


def _clean_lines(data_dir) -> list[str]:
    from pipeline import catalog, readers

    entries = [e for e in catalog.load_catalog(catalog.DEFAULT_CATALOG, data_dir) if e.name in CLEAN_SOURCES]
    assert len(entries) == len(CLEAN_SOURCES)
    lines = []
    for entry in entries:
        texts = [
            raw.text
            for path in catalog.expand_entry(entry, data_dir)
            for raw in readers.read_file(entry, str(path))
            if raw.text and len(raw.text.split()) >= 5
        ]
        lines += texts[:CLEAN_LINES]
    return lines


def test_row38_respelled_test_sentences_are_dropped_and_counted(data_dir, tmp_path, fake_sources):
    planted = _planted(data_dir)
    covered = {respelling for _, respelling, _ in planted}
    assert covered == set(RESPELLINGS)  # every respelling applies to some real sentence
    clean = _clean_lines(data_dir)
    rng = random.Random(0)
    embedded = [
        (name, "inside a paragraph", inside_paragraph(line, rng.choice(clean), rng.choice(clean)))
        for name, _, line in planted[::5]
    ]
    planted += embedded
    # a raw source with the planted lines among clean ones, run through the corpus stage
    data = tmp_path / "data"
    (data / "src").mkdir(parents=True)
    (data / "eval").symlink_to((data_dir / "eval").resolve())
    lines = clean[:300] + [line for _, _, line in planted]
    rng.shuffle(lines)
    (data / "src" / "mixed.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    catalog = write_catalog(tmp_path, [{"name": "mixed", "lang": "yor", "path": "src/mixed.txt"}])
    out = tmp_path / "out"
    run(
        run_args(
            data,
            catalog,
            out,
            "decontam.sets=[masakhaner1, masakhaner2]",
            "minhash.enabled=false",
            "filter.min_script_share=0",
            "filter.max_pivot_share=1",
        )
    )
    stats = json.loads((out / "stats.json").read_text())
    dropped = stats["languages"]["yor"]["decontaminated_by_eval_set"]
    expected = {name: sum(1 for n, _, _ in planted if n == name) for name in ("masakhaner1", "masakhaner2")}
    assert dropped == expected
    kept = "\n".join(
        json.loads(l)["text"]
        for shard in out.rglob("*.jsonl.gz")
        for l in __import__("gzip").open(shard, "rt", encoding="utf-8")
    )
    assert not [line for _, _, line in planted if line in kept]


def test_row38_held_out_clean_text_loses_at_most_the_measured_rate(data_dir):
    """The cost of the folded key is what it drops beyond the exact key. (Proverbs are no clean
    sample: AfriSenti tweets quote them, and the folded key rightly drops 5 of 1,500 Yoruba
    proverbs that a tweet wrote with other marks or spacing.)"""
    folded = EvalIndex(DecontamConfig())
    exact = EvalIndex(DecontamConfig(), words=word_tokens, letters=False)
    for task in task_registry().values():
        for lang in set(task.langs) & {"ewe", "fon"}:
            for split in ("dev", "test"):
                path = task.files.get(split, "")
                if path and (data_dir / path.replace("{lang}", lang)).is_file():
                    for item in iter_items(task, lang, split, data_dir):
                        folded.add(item)
                        exact.add(item)
    clean = _clean_lines(data_dir)
    assert len(clean) == CLEAN_LINES * len(CLEAN_SOURCES)
    lost = [line for line in clean if folded.match(line) is not None and exact.match(line) is None]
    assert len(lost) <= MEASURED_CLEAN_LOSS * len(clean), lost[:5]
