"""The tiny preset on real text (a few plain-line sources of /work/shared/data), with the
selection module in place: validation loss falls for every language and every round's
per-language counts match its quotas. Slow (minutes): `make test-all`."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from pretrain import train

FILES = {
    "amh": ["e_hornmt/data/amh.txt"],
    "tir": ["e_hornmt/data/tir.txt"],
    "som": ["e_hornmt/data/som.txt"],
    "ibo": ["w_igbonlp/ig_en_mt/benchmark_dataset/train.ig"],
    "pcm": ["w_lafand_mt/text_files/en-pcm/train.pcm"],
    "yor": ["w_yoruba_text/Iroyin/news_sites.txt"],
}


@pytest.mark.slow
def test_tiny_preset_on_real_text_learns_every_language(data_dir, tmp_path):
    from tests.support.tokenizer import build_tiny_tokenizer, corpus_from_line_files
    from common.corpus import iter_texts

    corpus_dir = corpus_from_line_files(tmp_path / "corpus", data_dir, FILES, max_lines=1500)
    texts = {lang: list(iter_texts(corpus_dir, lang, "train")) for lang in FILES}
    tok_dir = build_tiny_tokenizer(tmp_path / "tokenizer", texts, vocab_size=2000)
    out = tmp_path / "run"
    args = train.parse_args(
        [
            "--preset",
            "tiny",
            f"corpus_dir={corpus_dir}",
            f"tokenizer_dir={tok_dir}",
            f"out_dir={out}",
            "selection.strategy=loss",
            "train.max_steps=200",
            "train.warmup_steps=20",
            "train.eval_every=50",
            "eval.at_start=true",
            "selection.select_every=50",
            "selection.blocks_per_round=800",
            "selection.candidates_per_round=1000",
        ]
    )
    train.run(train.load_run_config(args))
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if r["event"] == "eval"]
    for lang in FILES:
        assert evals[-1]["langs"][lang]["loss"] < evals[0]["langs"][lang]["loss"] - 0.5, lang
    rounds = sorted((out / "selection").glob("round-*.jsonl"))
    assert len(rounds) == 4
    for path in rounds:
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        summary = next(x for x in lines if x.get("type") == "summary")
        chosen = Counter(x["lang"] for x in lines if x.get("type") == "candidate" and x["chosen"])
        assert {lang: s["quota"] for lang, s in summary["languages"].items()} == dict(chosen), path.name
        assert sum(chosen.values()) == 800
