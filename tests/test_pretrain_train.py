"""End-to-end pretraining runs on a tiny corpus: outputs, determinism, resume and faults.

Faults are provoked for real: the training process is SIGKILLed or SIGTERMed, a checkpoint
file truncated, a write made to fail with ENOSPC. Checkpoint pruning is also tested in
test_pretrain_units.py.
"""

from __future__ import annotations

import errno
import json
import os
import shutil

import pytest

from common.config import ConfigError
from pretrain import checkpoint as ckpt
from pretrain import train
from pretrain.strategies import STRATEGIES
from tests.support.pretrain import (
    assert_same_run,
    build_inputs,
    final_weights,
    make_corpus,
    metric_records,
    run_args,
    run_inprocess,
    run_subprocess,
    same_weights,
    sentences,
)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return build_inputs(tmp_path_factory.mktemp("inputs"))


@pytest.fixture(scope="module")
def reference(inputs, tmp_path_factory):
    """One uninterrupted run; every resume test must reproduce it bit for bit."""
    out = tmp_path_factory.mktemp("ref") / "run"
    result = run_inprocess(*inputs, out)
    assert result.final_dir is not None
    return out


def test_run_writes_loadable_model_metrics_and_rounds(reference, inputs):
    from transformers import AutoModelForMaskedLM, AutoTokenizer, pipeline

    final = reference / "final"
    for name in ("model.safetensors", "config.json", "tokenizer.json", "sentencepiece.model"):
        assert (final / name).exists(), name
    model = AutoModelForMaskedLM.from_pretrained(str(final))
    tokenizer = AutoTokenizer.from_pretrained(str(final))
    assert model.config.vocab_size == len(tokenizer)
    fill = pipeline("fill-mask", model=str(final), tokenizer=str(final), device="cpu")
    assert len(fill(f"ọmọ {tokenizer.mask_token} lọ sí ilé")) == 5
    # Validation loss per language, first (untrained) vs last, falls for every language.
    evals = metric_records(reference, "eval")
    assert [e["step"] for e in evals] == [0, 4, 8, 12]
    for lang in ("amh", "hau", "yor"):
        assert evals[-1]["langs"][lang]["loss"] < evals[0]["langs"][lang]["loss"], lang
    trains = metric_records(reference, "train")
    assert [r["step"] for r in trains] == list(range(2, 13, 2))
    # Rounds every 4 steps: 3 round files, one selection record each.
    assert sorted(p.name for p in (reference / "selection").glob("round-*.jsonl")) == [
        "round-000.jsonl",
        "round-001.jsonl",
        "round-002.jsonl",
    ]
    assert [r["round"] for r in metric_records(reference, "selection")] == [0, 1, 2]
    manifest = json.loads((reference / "manifest.json").read_text())
    assert set(manifest["summary"]["valid_loss"]) == {"amh", "hau", "yor"}
    assert (reference / "config.yaml").exists() and (reference / "timing.jsonl").exists()
    # keep_checkpoints=2 (pruning in a real run): checkpoints 9 and 12 remain.
    assert [s for s, _ in ckpt.list_checkpoints(reference / "checkpoints")] == [12, 9]


def test_rerun_is_skipped_when_complete(reference, inputs, capsys):
    result = run_inprocess(*inputs, reference)
    assert result.skipped and "skipped" in capsys.readouterr().out


def test_same_seed_same_metrics_and_selection_row14(reference, inputs, tmp_path):
    run_inprocess(*inputs, tmp_path / "again")
    assert_same_run(reference, tmp_path / "again")
    run_inprocess(*inputs, tmp_path / "seed1", "train.seed=1")
    assert (tmp_path / "seed1" / "metrics.jsonl").read_bytes() != (reference / "metrics.jsonl").read_bytes()


def test_changed_settings_are_refused_row4(reference, inputs, tmp_path):
    before = (reference / "manifest.json").read_bytes()
    with pytest.raises(ConfigError) as err:
        run_inprocess(*inputs, reference, "model.hidden_size=64", "train.seed=7", "selection.strategy=loss")
    text = str(err.value)
    for name in (
        "model.hidden_size: 32 -> 64",
        "train.seed: 0 -> 7",
        'selection.strategy: "random" -> "loss"',
        "--fresh",
    ):
        assert name in text
    assert (reference / "manifest.json").read_bytes() == before  # nothing touched
    # Another tokenizer is another input.
    from tests.support.tokenizer import build_tiny_tokenizer

    texts = {lang: sentences(lang, 120, seed=1) for lang in ("amh", "hau", "yor", "swa")}
    other_tok = build_tiny_tokenizer(tmp_path / "tok2", texts)
    with pytest.raises(ConfigError, match="input tokenizer_hash"):
        run_inprocess(inputs[0], other_tok, reference)
    # --fresh on a copy starts again with the new settings; settings that change nothing are fine.
    copy = tmp_path / "copy"
    shutil.copytree(reference, copy)
    run_inprocess(*inputs, copy, "train.seed=7", "train.max_steps=4", fresh=True)
    assert metric_records(copy, "train")[-1]["step"] == 4
    # A setting that changes nothing in the result (log_every) does not make it retrain.
    assert run_inprocess(*inputs, copy, "train.seed=7", "train.max_steps=4", "train.log_every=1").skipped


def test_sigkill_mid_round_resumes_bit_identical_row1_row5(reference, inputs, tmp_path):
    out = tmp_path / "killed"
    # Killed after 7 steps: checkpoint at step 6 is mid-round 1 (rounds are steps 0-3, 4-7, 8-11).
    proc = run_subprocess(*inputs, out, env={"AFRO_TEST_SIGNAL_AT_STEP": "7:KILL"})
    assert proc.returncode == -9, proc.stderr
    assert [s for s, _ in ckpt.list_checkpoints(out / "checkpoints")] == [6, 3]
    assert metric_records(out, "train")[-1]["step"] == 6  # lines up to the kill, beyond the checkpoint
    rounds_before = sorted(p.name for p in (out / "selection").iterdir())
    assert rounds_before == ["round-000.jsonl", "round-001.jsonl"]
    run_inprocess(*inputs, out)  # the same command again
    assert_same_run(reference, out)
    assert len(metric_records(out, "selection")) == 3  # round 1 not re-selected, none duplicated


def test_killed_while_saving_uses_previous_checkpoint_row2(reference, inputs, tmp_path):
    out = tmp_path / "killed-in-save"
    proc = run_subprocess(*inputs, out, env={"AFRO_TEST_KILL_IN_SAVE": "2"})  # the step-6 save
    assert proc.returncode == -9, proc.stderr
    assert [s for s, _ in ckpt.list_checkpoints(out / "checkpoints")] == [3]
    assert list((out / "checkpoints").glob(".tmp-step-0000006.*"))  # the partial save, never renamed
    assert ckpt.find_latest(out / "checkpoints") == out / "checkpoints" / "step-0000003"
    run_inprocess(*inputs, out)
    assert_same_run(reference, out)
    assert not list((out / "checkpoints").glob(".tmp-*"))


def test_sigterm_saves_and_exits_cleanly_row12(reference, inputs, tmp_path):
    out = tmp_path / "term"
    proc = run_subprocess(*inputs, out, env={"AFRO_TEST_SIGNAL_AT_STEP": "4:TERM"})
    assert proc.returncode == 128 + 15, proc.stderr
    assert "Traceback" not in proc.stderr and "SIGTERM" in proc.stderr
    assert ckpt.find_latest(out / "checkpoints") == out / "checkpoints" / "step-0000005"
    assert not (out / "final").exists() and not (out / "manifest.json").exists()
    run_inprocess(*inputs, out)
    assert_same_run(reference, out)


def test_corrupt_newest_checkpoint_falls_back_row3(reference, inputs, tmp_path, monkeypatch, capsys):
    out = tmp_path / "corrupt"
    original = train.Trainer.train_step

    def crash_at_7(self, ids):
        if self.progress.step == 7:
            raise RuntimeError("power cut")
        return original(self, ids)

    monkeypatch.setattr(train.Trainer, "train_step", crash_at_7)
    with pytest.raises(RuntimeError, match="power cut"):
        run_inprocess(*inputs, out)
    monkeypatch.setattr(train.Trainer, "train_step", original)
    newest = out / "checkpoints" / "step-0000006"
    with open(newest / "model.pt", "r+b") as handle:  # a torn write
        handle.truncate(100)
    run_inprocess(*inputs, out)
    err = capsys.readouterr().err
    assert "step-0000006" in err and "model.pt does not match its checksum" in err
    assert_same_run(reference, out)


def test_disk_full_while_saving_row6(inputs, tmp_path, monkeypatch, capsys):
    out = tmp_path / "full"
    calls = {"n": 0}
    original = ckpt._write_file

    def enospc_on_second_save(path, data):
        if path.parent.name.startswith(".tmp-step-0000006"):
            calls["n"] += 1
            if calls["n"] == 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        original(path, data)

    monkeypatch.setattr(ckpt, "_write_file", enospc_on_second_save)
    code = train.main(run_args(*inputs, out))
    assert code == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "step-0000006" in err and "earlier checkpoints" in err
    assert [s for s, _ in ckpt.list_checkpoints(out / "checkpoints")] == [3]
    assert ckpt.verify(out / "checkpoints" / "step-0000003") is None
    assert not list((out / "checkpoints").glob(".tmp-*"))


def test_nan_loss_is_skipped_then_stops_row7(inputs, tmp_path, monkeypatch):
    from pretrain.model import MaskedLMObjective

    original = MaskedLMObjective.forward
    poisoned = {"calls": set()}

    def nan_on(calls):
        def forward(self, input_ids, attention_mask, labels):
            loss, n = original(self, input_ids, attention_mask, labels)
            poisoned["count"] = poisoned.get("count", 0) + 1
            if self.model.training and poisoned["count"] in calls:
                loss = loss * float("nan")
            return loss, n

        return forward

    # Training forwards are 2 per step (grad_accum=2); poison one micro-batch of step 3.
    monkeypatch.setattr(MaskedLMObjective, "forward", nan_on({5}))
    out = tmp_path / "nan-once"
    run_inprocess(*inputs, out, "train.eval_every=100")
    assert metric_records(out, "train")[-1]["skipped_steps"] == 1
    assert any("non-finite" in w["message"] for w in metric_records(out, "warning"))
    weights = final_weights(out)
    assert all(bool(t.isfinite().all()) for t in weights.values())

    poisoned.clear()
    monkeypatch.setattr(MaskedLMObjective, "forward", nan_on(set(range(5, 1000))))
    with pytest.raises(train.TrainingError, match="non-finite for 3 steps in a row"):
        run_inprocess(*inputs, tmp_path / "nan-always", "train.max_bad_steps=3", "train.eval_every=100")
    for _, folder in ckpt.list_checkpoints(tmp_path / "nan-always" / "checkpoints"):
        state = ckpt.read_torch(folder, "model.pt")
        assert all(bool(t.isfinite().all()) for t in state.values())


def test_language_smaller_than_a_block_row9(tmp_path):
    texts = {"hau": sentences("hau", 80), "yor": sentences("yor", 80), "swa": ["Habari 🙂."]}
    corpus_dir = make_corpus(tmp_path / "corpus", texts)
    from tests.support.tokenizer import build_tiny_tokenizer

    tok_dir = build_tiny_tokenizer(tmp_path / "tok", texts, vocab_size=600)
    out = tmp_path / "run"
    run_inprocess(corpus_dir, tok_dir, out, "train.max_steps=2", "train.eval_every=2")
    warnings = [w["message"] for w in metric_records(out, "warning")]
    assert any(w.startswith("swa: less training text than one block") for w in warnings)
    assert set(metric_records(out, "eval")[-1]["langs"]) == {"hau", "yor"}
    with pytest.raises(ConfigError, match="data.langs: 'swa' has less training text than one block"):
        run_inprocess(corpus_dir, tok_dir, tmp_path / "asked", "data.langs=[hau, swa]")
    with pytest.raises(ConfigError, match="data.langs: 'zul' has no text"):
        run_inprocess(corpus_dir, tok_dir, tmp_path / "asked2", "data.langs=[zul]")


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_every_strategy_runs(strategy, inputs, tmp_path):
    out = tmp_path / strategy
    run_inprocess(*inputs, out, f"selection.strategy={strategy}", "train.max_steps=8", "train.eval_every=8")
    rounds = sorted((out / "selection").glob("round-*.jsonl"))
    assert len(rounds) == 2
    assert (out / "final" / "model.safetensors").exists()


def test_cpu_bf16_falls_back_to_fp32_without_the_instructions_and_learns_with_them(
    reference, inputs, tmp_path, monkeypatch, capsys
):
    # Without bf16 instructions the setting changes nothing (same run as fp32) and the log says why.
    monkeypatch.setattr(train, "cpu_has_bf16", lambda: False)
    run_inprocess(*inputs, tmp_path / "fallback", "train.cpu_bf16=true")
    assert "no bf16 instructions" in capsys.readouterr().out
    assert_same_run(reference, tmp_path / "fallback")
    # With them, training steps run under bf16 autocast: other weights, and every language still
    # learns; validation is computed in fp32 either way.
    monkeypatch.setattr(train, "cpu_has_bf16", lambda: True)
    run_inprocess(*inputs, tmp_path / "bf16", "train.cpu_bf16=true")
    assert not same_weights(final_weights(reference), final_weights(tmp_path / "bf16"))
    evals = metric_records(tmp_path / "bf16", "eval")
    for lang in ("amh", "hau", "yor"):
        assert evals[-1]["langs"][lang]["loss"] < evals[0]["langs"][lang]["loss"], lang
