"""Benchmark: wall time of one selection round per strategy against training steps (CPU,
tiny-preset model shape: 2 layers, hidden 128, vocabulary 8,000, blocks of 128). Prints JSON.
Run from the repo root: `python tests/bench_selection.py [torch threads]`. Not a test."""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from transformers import AutoTokenizer, XLMRobertaConfig, XLMRobertaForMaskedLM  # noqa: E402

from pretrain.selection import SelectionConfig, SelectionState, run_round  # noqa: E402
from pretrain.strategies import STRATEGIES  # noqa: E402
from tests import test_selection as fixtures  # noqa: E402

SELECT_EVERY, BATCH = 100, 16  # the tiny preset's round: 100 steps of 16 blocks


def main(threads: int) -> dict:
    torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(fixtures.build_tiny_tokenizer(tempfile.mkdtemp()))
    train = {lang: fixtures.synthetic_sentences(lang, n * 12, 0) for lang, n in fixtures.LANGS.items()}
    pool = fixtures.MemoryPool(tokenizer, train, {}, block_len=128)
    torch.manual_seed(0)
    model = XLMRobertaForMaskedLM(
        XLMRobertaConfig(
            vocab_size=8000,
            hidden_size=128,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=512,
            max_position_embeddings=130,
            pad_token_id=1,
        )
    )
    out = {"threads": threads, "pool_blocks": sum(len(pool.ids(l)) for l in pool.languages)}
    out["train_step_s"] = round(time_train_step(model, pool), 4)
    for strategy in STRATEGIES:
        cfg = SelectionConfig(
            strategy=strategy,
            blocks_per_round=1600,
            candidates_per_round=3200,
            warmup_rounds=0,
            select_every=SELECT_EVERY,
            score_batch_size=64,
        )
        state = SelectionState(reference={k: v.clone() for k, v in model.state_dict().items()})
        started = time.perf_counter()
        result = run_round(model, pool, cfg, state, 0, tempfile.mkdtemp(), "cpu")
        wall = time.perf_counter() - started
        out[strategy] = {
            "candidates": result.summary["candidates"],
            "round_s": round(wall, 2),
            "scoring_s": round(result.scoring_seconds, 2),
            "share": round(wall / (wall + SELECT_EVERY * out["train_step_s"]), 3),
        }
    return out


def time_train_step(model, pool, warmup: int = 3, timed: int = 10) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    blocks = torch.as_tensor(pool.blocks(pool.ids("yor")[:BATCH]))
    for step in range(warmup + timed):
        if step == warmup:
            started = time.perf_counter()
        loss = model(input_ids=blocks, labels=blocks).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (time.perf_counter() - started) / timed


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1), indent=1))
