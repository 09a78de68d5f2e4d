"""The local-attention curriculum: a window on attention early in training, full attention after."""
from __future__ import annotations

import json

import pytest
import torch
from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM

from common.config import ConfigError, load_config
from pretrain import train
from pretrain.config import PretrainConfig
from pretrain.model import local_attention_mask, local_radius
from tests.support.pretrain import build_inputs, run_args


def test_radius_follows_the_stages_then_full_attention():
    schedule = [[2, 10], [8, 15]]
    assert [local_radius(schedule, s) for s in (0, 9, 10, 14, 15, 99)] == [2, 2, 8, 8, None, None]
    assert local_radius([], 0) is None


def test_mask_limits_what_each_position_sees_in_a_real_model():
    torch.manual_seed(0)
    config = XLMRobertaConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                              intermediate_size=32, max_position_embeddings=20)
    model = XLMRobertaForMaskedLM(config).eval()
    ids = torch.randint(5, 50, (1, 12))
    keys = torch.ones_like(ids, dtype=torch.bool)
    keys[0, -2:] = False  # padding is never attended to
    mask = local_attention_mask(keys, radius=2)
    assert mask.shape == (1, 1, 12, 12)
    assert mask[0, 0, 5].tolist() == [False] * 3 + [True] * 5 + [False] * 4
    assert not mask[0, 0, :, -2:].any()
    changed = ids.clone()
    changed[0, 6] = (ids[0, 6] + 1 - 5) % 45 + 5
    with torch.no_grad():
        before = model.roberta(input_ids=ids, attention_mask=mask).last_hidden_state
        after = model.roberta(input_ids=changed, attention_mask=mask).last_hidden_state
    # One layer: piece 6 reaches positions 4..8 and no further.
    moved = (before - after).abs().amax(-1)[0] > 1e-6
    assert moved.tolist()[:10] == [False] * 4 + [True] * 5 + [False]


@pytest.mark.parametrize("stages", [[[0, 10]], [[2, 10], [4, 5]], [[2, 999]], [[2]]])
def test_bad_schedules_name_the_setting(stages):
    with pytest.raises(ConfigError, match="train.local_attention"):
        load_config(PretrainConfig, overrides=[f"train.local_attention={json.dumps(stages)}", "train.max_steps=100"])


def test_a_run_with_the_curriculum_trains_logs_the_stages_and_records_the_setting(tmp_path, capsys):
    corpus_dir, tok_dir = build_inputs(tmp_path / "inputs", langs=("hau", "yor"), n=80)
    out = tmp_path / "run"
    args = train.parse_args(run_args(corpus_dir, tok_dir, out, "train.max_steps=6", "train.eval_every=6",
                                     "train.local_attention=[[1, 2], [3, 4]]"))
    train.run(train.load_run_config(args))
    lines = capsys.readouterr().out.splitlines()
    assert [line for line in lines if "attention" in line] == [
        "[train] step 0: attention within +-1 pieces (train.local_attention)",
        "[train] step 2: attention within +-3 pieces (train.local_attention)",
        "[train] step 4: full attention from here on"]
    run = json.loads((out / "run.json").read_text())
    assert run["settings"]["train.local_attention"] == [[1, 2], [3, 4]]
    plain = tmp_path / "plain"
    train.run(train.load_run_config(train.parse_args(run_args(corpus_dir, tok_dir, plain, "train.max_steps=6"))))
    assert "train.local_attention" not in json.loads((plain / "run.json").read_text())["settings"]
