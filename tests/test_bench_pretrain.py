"""make bench-pretrain: the generated tokenizer and blocks, and one tiny end-to-end comparison
(both arms in their own processes) whose JSON is checked for a fair, complete comparison."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from bench.pretrain import PretrainBenchConfig, build_tokenizer, make_blocks
from common.config import ConfigError, load_config

TINY = [
    "vocab_sizes=[300,600]",
    "hidden_size=32",
    "num_layers=1",
    "num_heads=2",
    "ffn_size=64",
    "batch_size=4",
    "seq_len=16",
    "warmup_steps=1",
    "steps=2",
    "threads=1",
]


def test_tokenizer_has_the_size_asked_and_the_xlmr_special_ids():
    tok = build_tokenizer(300)
    assert len(tok) == 300
    assert (tok.bos_token_id, tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2, 3)
    assert tok.mask_token_id == 299
    assert sorted(tok.all_special_ids) == [0, 1, 2, 3, 299]
    assert tok.convert_ids_to_tokens([4, 298]) == ["\u2581p0", "\u2581p294"]


def test_blocks_are_packed_like_ours_and_zipf_distributed():
    cfg = PretrainBenchConfig(mean_doc_tokens=20)
    blocks = make_blocks(200, 64, 1000, cfg)
    assert blocks.shape == (200, 64) and blocks.dtype == np.int32
    assert (blocks[:, 0] == 0).all()  # <s> opens every block
    body = blocks[:, 1:]
    assert not np.isin(body, [0, 1, 3, 999]).any()  # no <s>, padding, <unk> or <mask> inside
    assert 0.02 < (body == 2).mean() < 0.08  # </s> ends a document about every 20 tokens
    pieces = body[body != 2]
    assert pieces.min() >= 4 and pieces.max() <= 998
    counts = np.bincount(pieces - 4, minlength=995)
    assert counts[0] > 5 * counts[9] > 0  # rank 1 ~10x as frequent as rank 10
    assert (make_blocks(200, 64, 1000, cfg) == blocks).all()  # seeded


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="num_heads=3 must divide hidden_size=32"):
        load_config(PretrainBenchConfig, overrides=["hidden_size=32", "num_heads=3"])
    with pytest.raises(ConfigError, match="vocab_sizes"):
        load_config(PretrainBenchConfig, overrides=["vocab_sizes=[]"])


def test_tiny_comparison_end_to_end_prints_a_fair_side_by_side():
    done = subprocess.run([sys.executable, "-m", "bench.pretrain", *TINY], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)  # stdout is the JSON alone (the Trainer's prints go to stderr)
    assert result["config"]["vocab_sizes"] == [300, 600] and result["config"]["hidden_size"] == 32
    assert result["settings"]["mask_probability"] == 0.15  # BERT's rate, the default
    assert set(result["vocab"]) == {"300", "600"}
    for row in result["vocab"].values():
        ours, hf = row["ours"], row["hf"]
        for arm in (ours, hf):
            assert arm["tokens_per_s"] > 0 and arm["peak_rss_mib"] > 0
            assert arm["timed_steps"] == 2 and arm["torch_threads"] == 1
            assert arm["tokens_per_step"] == 4 * 16  # full blocks, no padding
            assert arm["timed_tokens"] == 2 * 4 * 16
            assert 0 < arm["targets_per_step_mean"] < 4 * 16
            assert arm["runs_tokens_per_s"] == [arm["tokens_per_s"]]  # repeats=1: one run per arm
        assert row["same_tokens_per_step"] is True
        assert ours["tokens_per_step"] == hf["tokens_per_step"]
        # Same AdamW: class, hyper-parameters, fused kernel, and the same decay split.
        assert row["same_optimizer"] is True and ours["optimizer"] == hf["optimizer"]
        assert ours["optimizer"]["fused"] is True and ours["optimizer"]["betas"] == [0.9, 0.98]
        assert ours["max_grad_norm"] == hf["max_grad_norm"] == 1.0
        assert row["ratio_tokens_per_s"] == pytest.approx(ours["tokens_per_s"] / hf["tokens_per_s"], rel=1e-2)
        assert row["goal_ratio"] is None and row["meets_goal"] is None  # goals are set for 8k and 64k only
    # The vocabulary reaches the model: the larger one has 300 more embedding rows (+ output bias).
    groups = {
        v: dict((wd, n) for wd, n in result["vocab"][v]["ours"]["optimizer"]["decay_groups"]) for v in ("300", "600")
    }
    assert groups["600"][0.01] - groups["300"][0.01] == 300 * 32
    assert groups["600"][0.0] - groups["300"][0.0] == 300
