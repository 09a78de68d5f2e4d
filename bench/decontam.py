"""How the decontamination thresholds were chosen: leaks caught against clean lines lost.

    python -m bench.decontam [data_dir=../shared/data] [out_dir=out/bench-decontam] [key=value ...]

1. The corpus stage runs on the shared data with decontamination off (`<out_dir>/raw-corpus`,
   skipped when current): every line a cleaner could drop is still there.
2. **Leaks**: `sentences` MasakhaNER dev/test sentences (>= 10 words) per language of `langs`,
   each respelled as web pages write it (bench/respell.py: marks stripped or stacked, hooks plain,
   curly apostrophes, vowels elided, and inside a longer paragraph of corpus text). Recall: the
   share of respelled sentences a setting drops.
3. **Cost**: every corpus line is matched; the lines a setting drops beyond what the exact key
   (marks kept: the data README's measure) drops are the most clean text it can cost. They
   include real respelled leaks (docs/corpus.md shows samples), so this bounds the loss from above.
For each `chunk_letters` one index is built; `min_similarity` thresholds are swept on the best
aligned similarity of each line. Prints JSON (per setting: recall per respelling, lines dropped
beyond the exact and the folded-words key, and their share of all lines).
"""

from __future__ import annotations

import gc
import json
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.respell import RESPELLINGS, inside_paragraph
from common import corpus
from common.cli import Command
from common.config import config_to_dict
from common.eval_sets import iter_items, task_registry
from pipeline.config import CorpusConfig, DecontamConfig
from pipeline.decontam import EvalIndex, plan_sources
from pipeline.run import run as run_corpus
from pipeline.textkey import folded_words, word_tokens


@dataclass
class DecontamBenchConfig:
    data_dir: Path = Path("../shared/data")
    out_dir: Path = Path("out/bench-decontam")
    langs: list[str] = field(default_factory=lambda: ["yor", "ibo", "fon", "ewe", "hau", "bam", "twi", "wol"])
    sentences: int = 150  # test sentences respelled per language
    chunk_letters: list[int] = field(default_factory=lambda: [16, 20, 24, 32])
    min_similarity: list[float] = field(default_factory=lambda: [0.5, 0.6, 0.7, 0.8, 0.9])
    min_letters: int = 40
    seed: int = 0


def leak_sentences(cfg: DecontamBenchConfig, fillers: list[str]) -> list[tuple[str, str]]:
    """(respelling, text) for each sentence a respelling changes, plus each inside a paragraph."""
    rng = random.Random(cfg.seed)
    registry = task_registry()
    planted = []
    for lang in cfg.langs:
        sentences = [
            item.text
            for name in ("masakhaner1", "masakhaner2")
            if lang in registry[name].langs
            for split in ("dev", "test")
            for item in iter_items(registry[name], lang, split, cfg.data_dir)
            if len(item.text.split()) >= 10
        ]
        for text in rng.sample(sentences, min(cfg.sentences, len(sentences))):
            planted += [
                (name, respelled) for name, respell in RESPELLINGS.items() if (respelled := respell(text)) != text
            ]
            planted.append(("inside a paragraph", inside_paragraph(text, rng.choice(fillers), rng.choice(fillers))))
    return planted


def profile(index: EvalIndex, texts: list[str]) -> list[tuple[bool, float]]:
    """(folded words match, best aligned letters similarity) per text."""
    out = []
    for text in texts:
        first = index.find(text)
        best = max((score for _, score in index.letter_similarities(folded_words(text))), default=0.0)
        out.append((first is not None and first.how == "words", best))
    return out


def measure(cfg: DecontamBenchConfig) -> dict:
    raw = Path(cfg.out_dir) / "raw-corpus"
    run_corpus([f"data_dir={cfg.data_dir}", f"out_dir={raw}", "decontam.enabled=false"])
    lines = [
        r["text"]
        for lang in corpus.list_languages(raw)
        for split in ("train", "valid")
        for r in corpus.iter_records(raw, lang, split)
    ]
    planted = leak_sentences(cfg, random.Random(cfg.seed).sample(lines, 2000))
    corpus_cfg = CorpusConfig(data_dir=cfg.data_dir)
    sources = plan_sources(corpus_cfg).sources
    exact = EvalIndex.from_sources(
        sources, cfg.data_dir, DecontamConfig(chunk_letters=0), words=word_tokens, letters=False
    )
    exact_hits = [exact.find(t) is not None for t in lines]
    planted_exact = [exact.find(t) is not None for _, t in planted]
    del exact
    gc.collect()
    results = []
    for chunk in cfg.chunk_letters:
        start = time.time()
        index = EvalIndex.from_sources(
            sources, cfg.data_dir, DecontamConfig(chunk_letters=chunk, min_letters=cfg.min_letters)
        )
        line_scores, planted_scores = profile(index, lines), profile(index, [t for _, t in planted])
        print(
            f"[bench-decontam] chunk_letters={chunk}: indexed and matched in {time.time() - start:.0f}s",
            file=sys.stderr,
            flush=True,
        )
        del index
        gc.collect()
        for threshold in [None, *cfg.min_similarity]:  # None: the folded words alone

            def dropped(score, threshold=threshold):
                return score[0] or (threshold is not None and score[1] >= threshold)

            drops = [dropped(s) for s in line_scores]
            recall = {}
            for name in dict.fromkeys(n for n, _ in planted):
                hits = [dropped(s) for (n, _), s in zip(planted, planted_scores) if n == name]
                recall[name] = round(sum(hits) / len(hits), 3)
            beyond_exact = sum(d and not e for d, e in zip(drops, exact_hits))
            beyond_words = sum(d and not s[0] for d, s in zip(drops, line_scores))
            results.append(
                {
                    "chunk_letters": chunk if threshold is not None else 0,
                    "min_similarity": threshold,
                    "recall": recall,
                    "recall_all": round(sum(dropped(s) for s in planted_scores) / len(planted), 3),
                    "dropped": sum(drops),
                    "beyond_exact": beyond_exact,
                    "beyond_words": beyond_words,
                    "beyond_exact_share": round(beyond_exact / len(lines), 5),
                }
            )
    exact_recall = {}
    for name in dict.fromkeys(n for n, _ in planted):
        hits = [h for (n, _), h in zip(planted, planted_exact) if n == name]
        exact_recall[name] = round(sum(hits) / len(hits), 3)
    unique = {json.dumps(r, sort_keys=True): r for r in results}  # the words-only row, once
    return {
        "config": config_to_dict(cfg),
        "corpus_lines": len(lines),
        "planted": len(planted),
        "exact_key": {"recall": exact_recall, "dropped": sum(exact_hits)},
        "settings": list(unique.values()),
    }


COMMAND = Command(DecontamBenchConfig, "python -m bench.decontam", __doc__)


def main(argv: list[str] | None = None) -> int:
    return COMMAND.run(argv, lambda cfg, args: write_result(cfg, measure(cfg)))


def write_result(cfg: DecontamBenchConfig, result: dict) -> None:
    Path(cfg.out_dir).mkdir(parents=True, exist_ok=True)
    (Path(cfg.out_dir) / "decontam.json").write_text(json.dumps(result, indent=1, ensure_ascii=False))
    print(json.dumps(result, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    sys.exit(main())
