"""Tiny corpora and tokenizers for the pretrain tests (built in tmp_path, offline)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

from common.io import sha256_file, sha256_json, write_jsonl_gz, write_manifest

# Word lists per script family: Latin with tone marks (Yoruba, Igbo), Hausa, Ge'ez, Swahili + emoji.
WORDS = {
    "yor": "ọmọ náà ń lọ sí ilé ìwé lójoojúmọ́ ẹ kú àárọ̀ ṣé dáadáa ni bàbá ìyá oúnjẹ omi ọjà".split(),
    "ibo": "nwaanyị ahụ na eri nri n'ụlọ ya ọ bụ ezigbo mmadụ nne nna mmiri ahịa ụbọchị".split(),
    "hau": "yaron yana zuwa makaranta kowace rana ina kwana yaya aiki uwa uba ruwa kasuwa".split(),
    "amh": "ልጁ በየቀኑ ወደ ትምህርት ቤት ይሄዳል እንደምን አደርክ እናት አባት ውሃ ገበያ ቀን".split(),
    "swa": "mtoto anaenda shule kila siku 🙂 habari za asubuhi mama baba maji soko".split(),
}


def sentences(lang: str, n: int, seed: int = 0) -> list[str]:
    rng = random.Random(f"{lang}-{seed}")
    words = WORDS[lang]
    return [" ".join(rng.choice(words) for _ in range(rng.randint(4, 14))) + "." for _ in range(n)]


def make_corpus(root: Path, texts_by_lang: dict[str, list[str]], valid_every: int = 10) -> Path:
    """Corpus-stage layout (docs/interfaces.md) with every `valid_every`-th text in valid."""
    outputs = []
    for lang, texts in texts_by_lang.items():
        splits = {"train": [], "valid": []}
        for i, text in enumerate(texts):
            splits["valid" if valid_every and i % valid_every == valid_every - 1 else "train"].append(text)
        for split, items in splits.items():
            if not items:
                continue
            path = root / lang / f"{split}-00000.jsonl.gz"
            write_jsonl_gz(
                path,
                ({"id": f"{lang}-{split}-{i}", "lang": lang, "source": "test", "text": t} for i, t in enumerate(items)),
            )
            outputs.append(path)
    digest = sha256_json({str(p.relative_to(root)): sha256_file(p) for p in outputs})
    write_manifest(root, "corpus", {}, {}, outputs, extra={"corpus_hash": digest})
    return root


# A run small enough for tests: rounds of 4 steps, a checkpoint every 3 (so resumes land mid-round).
TEST_SETTINGS = [
    "model.hidden_size=32",
    "model.num_layers=2",
    "model.num_heads=2",
    "model.ffn_size=64",
    "data.block_len=32",
    "eval.targets_per_lang=200",
    "train.max_steps=12",
    "train.batch_size=4",
    "train.grad_accum=2",
    "train.lr=3e-3",
    "train.warmup_steps=2",
    "train.eval_every=4",
    "train.log_every=2",
    "train.checkpoint_every=3",
    "train.keep_checkpoints=2",
    "train.cpu_threads=1",
    "selection.strategy=random",
    "selection.select_every=4",
    "selection.blocks_per_round=24",
    "selection.candidates_per_round=48",
]


def run_args(corpus_dir: Path, tokenizer_dir: Path, out_dir: Path, *extra: str) -> list[str]:
    return [
        f"corpus_dir={corpus_dir}",
        f"tokenizer_dir={tokenizer_dir}",
        f"out_dir={out_dir}",
        f"data.cache_dir={out_dir.parent / 'cache'}",
        *TEST_SETTINGS,
        *extra,
    ]


def build_inputs(root: Path, langs=("amh", "hau", "yor"), n: int = 120) -> tuple[Path, Path]:
    """A corpus of `langs` (n sentences each) and a tokenizer trained on it."""
    from tests.support.tokenizer import build_tiny_tokenizer  # the tokenizer stage's real code path

    texts = {lang: sentences(lang, n) for lang in langs}
    corpus_dir = make_corpus(root / "corpus", texts)
    tok_dir = build_tiny_tokenizer(root / "tokenizer", texts, vocab_size=600)
    return corpus_dir, tok_dir


def files_of(folder: Path, pattern: str) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(Path(folder).glob(pattern))}


def final_weights(out_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(Path(out_dir) / "final" / "model.safetensors"))


def same_weights(a: dict, b: dict) -> bool:
    import torch

    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


ENTRY = Path(__file__).resolve().parent.parent / "pretrain_entry.py"  # a run as its own process


def run_inprocess(corpus_dir, tok_dir, out_dir, *extra, fresh=False):
    from pretrain import train

    args = train.parse_args([*(["--fresh"] if fresh else []), *run_args(corpus_dir, tok_dir, out_dir, *extra)])
    return train.run(train.load_run_config(args), fresh=fresh)


def run_subprocess(corpus_dir, tok_dir, out_dir, *extra, env=None):
    return subprocess.run(
        [sys.executable, str(ENTRY), *run_args(corpus_dir, tok_dir, out_dir, *extra)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def metric_records(out_dir, event):
    return [
        r for r in map(json.loads, (Path(out_dir) / "metrics.jsonl").read_text().splitlines()) if r["event"] == event
    ]


def assert_same_run(a: Path, b: Path) -> None:
    assert same_weights(final_weights(a), final_weights(b))
    assert (a / "metrics.jsonl").read_bytes() == (b / "metrics.jsonl").read_bytes()
    assert files_of(a / "selection", "*") == files_of(b / "selection", "*")
