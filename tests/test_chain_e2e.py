"""The whole chain through the Makefile on two languages of the real data.

Runs `make all` (corpus -> tokenizer -> pretrain -> finetune -> report) with the tiny preset
shrunk further, then the publish dry run, checks each stage's outputs, and reruns `make all`
to check that every stage skips itself when nothing changed.
"""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest

from common.corpus import iter_texts
from tests.support import REPO_ROOT

STAMP = ".venv/.installed-stamp"
LANGS = ["hau", "yor"]


def make(*targets: str, out: Path, data_dir: Path, extra: list[str] = ()) -> str:
    """Run make in the repo; `-o` keeps it from reinstalling the venv."""
    args = [
        "make",
        "-C",
        str(REPO_ROOT),
        "-o",
        STAMP,
        *targets,
        f"OUT={out}",
        f"DATA={data_dir}",
        f"CORPUS_ARGS=langs=[{','.join(LANGS)}]",
        "TOKENIZER_ARGS=spm.vocab_size=2000 sampling.char_budget=400000",
        "PRETRAIN_ARGS=train.max_steps=40 train.warmup_steps=5 model.unigram_output_bias=false train.eval_every=20 train.log_every=10 "
        "train.checkpoint_every=20 eval.at_start=true selection.select_every=20 selection.blocks_per_round=320 "
        "selection.candidates_per_round=400",
        "TASKS=masakhaner1,yosm",
        f"LANGS={','.join(LANGS)}",
        "SEEDS=1",
        "FINETUNE_ARGS=train.epochs=1 train.max_train_examples=64 train.max_dev_examples=32 train.max_test_examples=64",
        *extra,
    ]
    done = subprocess.run(args, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"make {' '.join(targets)} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def chain(data_dir, tmp_path_factory):
    if not (REPO_ROOT / STAMP).exists():
        pytest.skip("needs the project's venv (run `make test`)")
    out = tmp_path_factory.mktemp("chain") / "out"
    log = make("all", out=out, data_dir=data_dir)
    return out, log


def test_corpus_has_both_languages_and_accounts_for_every_line(chain):
    out, _ = chain
    stats = json.loads((out / "corpus" / "stats.json").read_text())
    assert (out / "corpus" / "manifest.json").exists()
    for lang in LANGS:
        assert sum(1 for _ in iter_texts(out / "corpus", lang, "train")) > 1000
        assert sum(1 for _ in iter_texts(out / "corpus", lang, "valid")) > 0
    assert sorted(stats["languages"]) == LANGS
    for counts in stats["languages"].values():
        assert counts["read"] == counts["kept"] + counts["dropped"]  # units after splitting
        assert counts["kept"] == counts["train"] + counts["valid"]
        assert sum(counts["dropped_by_reason"].values()) == counts["dropped"]
    assert stats["languages"]["hau"]["decontaminated_by_eval_set"], "Hausa sources hold eval sentences"


def test_tokenizer_loads_and_round_trips(chain):
    from transformers import AutoTokenizer

    out, _ = chain
    tok = AutoTokenizer.from_pretrained(out / "tokenizer" / "tiny")
    text = "Ọmọ náà ń lọ sí ilé-ìwé. Yaron yana zuwa makaranta."
    assert tok.decode(tok(text)["input_ids"], skip_special_tokens=True) == text
    assert tok.unk_token_id not in tok(text)["input_ids"]


def test_pretraining_loss_falls_and_rounds_are_written(chain):
    out, _ = chain
    run = out / "pretrain" / "tiny-loss"
    events = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [e for e in events if e["event"] == "eval"]
    # 40 steps from a head without the unigram bias (which alone would start the model at the
    # training mix's unigram, where 40 steps move little): every language learns.
    assert evals[0]["step"] == 0
    for lang in LANGS:
        assert evals[-1]["langs"][lang]["loss"] < evals[0]["langs"][lang]["loss"] - 0.5, lang
    baseline = next(e for e in events if e["event"] == "baseline")
    assert set(baseline["langs"]) == set(LANGS)
    summary = json.loads((run / "manifest.json").read_text())["summary"]
    assert summary["vs_unigram"]["langs"] == len(LANGS)
    rounds = sorted((run / "selection").glob("round-*.jsonl"))
    assert len(rounds) == 2
    assert (run / "final" / "model.safetensors").exists() and (run / "manifest.json").exists()


def test_finetune_table_and_report(chain):
    out, _ = chain
    with open(out / "finetune" / "tiny-loss" / "results.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert {(r["task"], r["lang"]) for r in rows} == {("masakhaner1", "hau"), ("masakhaner1", "yor"), ("yosm", "yor")}
    html = (out / "report" / "report.html").read_text(encoding="utf-8")
    for heading in ("Corpus", "Tokenizer", "Pretraining", "Selection", "Downstream"):
        assert heading in html
    assert "not run yet" not in html
    assert "data:image/png;base64" in html


def test_publish_dry_run_folder_loads_offline(chain, data_dir):
    from transformers import pipeline

    out, _ = chain
    make("publish", out=out, data_dir=data_dir, extra=["REPO_ID=test-org/afrolm-e2e", "DRY_RUN=1"])
    upload = out / "publish" / "tiny-loss" / "upload"
    assert (upload / "README.md").read_text(encoding="utf-8").startswith("---")
    fill = pipeline("fill-mask", model=str(upload), tokenizer=str(upload))
    assert len(fill("Ina kwana, <mask> aiki?")) > 0


def test_unchanged_chain_is_skipped(chain, data_dir):
    out, _ = chain
    log = make("all", out=out, data_dir=data_dir)
    assert log.lower().count("skipped") >= 5, log[-3000:]
