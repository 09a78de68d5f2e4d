"""`make gpu-check` (bench/gpu_check.py): its arithmetic, the no-CUDA path, and its glue on CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from bench import gpu_check
from bench.gpu_check import GpuCheckConfig, flop_parameters, flops_per_token, main, mfu, steady_tokens_per_s
from common.config import ConfigError, load_config
from tests.support import REPO_ROOT


def test_flops_per_token_and_mfu_arithmetic():
    # 6N + 12*L*H*T: N=23e6, 6 layers, hidden 384, 128 tokens a block.
    per_token = flops_per_token(23e6, 6, 384, 128)
    assert per_token == 6 * 23e6 + 12 * 6 * 384 * 128 == 141_538_944
    # 500k tokens/s on a 989 TFLOP/s GPU
    assert mfu(500_000, per_token, 989e12) == pytest.approx(500_000 * 141_538_944 / 989e12)
    assert mfu(500_000, per_token, 989e12) == pytest.approx(0.07156, abs=1e-5)
    assert mfu(2 * 500_000, per_token, 989e12) == pytest.approx(2 * mfu(500_000, per_token, 989e12))


def test_flop_parameters_leave_out_tables_and_count_the_head_at_the_masked_share():
    from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM

    H, F, L, V = 16, 64, 2, 100
    model = XLMRobertaForMaskedLM(
        XLMRobertaConfig(
            vocab_size=V,
            hidden_size=H,
            num_hidden_layers=L,
            num_attention_heads=2,
            intermediate_size=F,
            max_position_embeddings=40,
            type_vocab_size=1,
            tie_word_embeddings=True,
        )
    )
    # per layer: Q, K, V, output (4H^2 + 4H), FFN in and out (2HF + F + H), two LayerNorms (4H);
    # plus the embeddings' LayerNorm (2H). Word/position/type tables are lookups.
    body = L * (4 * H * H + 4 * H + 2 * H * F + F + H + 4 * H) + 2 * H
    # LM head: dense (H^2 + H), LayerNorm (2H), the tied V x H projection and its bias.
    head = H * H + H + 2 * H + V * H + V
    assert flop_parameters(model, 0.0) == body
    assert flop_parameters(model, 0.15) == pytest.approx(body + 0.15 * head)
    assert flop_parameters(model, 1.0) == body + head


def test_steady_speed_leaves_out_the_first_window():
    timing = [
        {"step": 10, "tokens_per_s": 1000.0, "elapsed_s": 50.0},  # start-up, eval, selection
        {"step": 20, "tokens_per_s": 8000.0, "elapsed_s": 52.0},
        {"step": 30, "tokens_per_s": 4000.0, "elapsed_s": 56.0},
    ]
    steady, first = steady_tokens_per_s(timing)
    assert first == 1000.0
    assert steady == pytest.approx((8000 * 2 + 4000 * 4) / 6)
    assert steady_tokens_per_s(timing[:1]) == (1000.0, 1000.0)
    with pytest.raises(ValueError, match="timing"):
        steady_tokens_per_s([])


def test_settings_are_checked():
    assert GpuCheckConfig().steps == 300 and GpuCheckConfig().peak_flops == 989e12
    with pytest.raises(ConfigError, match="steps"):
        load_config(GpuCheckConfig, None, ["steps=5"])
    with pytest.raises(ConfigError, match="peak_flops"):
        load_config(GpuCheckConfig, None, ["peak_flops=0"])


def test_pretrain_config_is_the_small_preset_shortened():
    cfg = gpu_check.pretrain_config(GpuCheckConfig(steps=300, pretrain_args=["train.lr=5e-4"]))
    assert (cfg.model.hidden_size, cfg.model.num_layers, cfg.data.block_len) == (384, 6, 128)
    assert cfg.train.max_steps == 300 and cfg.train.warmup_steps == 30
    assert cfg.train.device == "cuda" and cfg.train.bf16 and cfg.train.lr == 5e-4
    fcfg = gpu_check.finetune_config(GpuCheckConfig(), REPO_ROOT / "some-model")
    assert fcfg.tasks == ["masakhaner2"] and fcfg.langs == ["hau"] and fcfg.seeds == [1]
    assert fcfg.train.epochs == 1 and fcfg.train.device == "cuda" and fcfg.force


def test_without_cuda_it_skips_and_exits_0(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    out = tmp_path / "gpu"
    assert main([f"out_dir={out}"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["skipped"] is True and "no CUDA device is visible" in report["reason"]
    assert not out.exists()
    # set before anything could start CUDA, as deterministic cuBLAS needs
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"


def test_make_gpu_check_command_on_a_cpu_machine(tmp_path):
    """The real command, in a fresh process: on this CUDA-less machine it skips cleanly."""
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is visible: the command would really run")
    proc = subprocess.run(
        [sys.executable, "-m", "bench.gpu_check", f"out_dir={tmp_path / 'g'}"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["skipped"] is True and "no CUDA device is visible" in report["reason"]
    if torch.version.cuda is None:
        assert "CPU-only build" in report["reason"]


def test_missing_inputs_name_their_settings(tmp_path, data_dir, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # get past the gate only
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    monkeypatch.setattr(
        torch, "use_deterministic_algorithms", lambda *a, **k: pytest.fail("must stop before running anything")
    )
    assert (
        main(
            [
                f"corpus_dir={tmp_path / 'nope'}",
                f"tokenizer_dir={tmp_path / 'tok'}",
                f"data_dir={data_dir}",
                f"out_dir={tmp_path / 'g'}",
            ]
        )
        == 2
    )
    report = json.loads(capsys.readouterr().out)
    assert "corpus_dir=" in report["error"] and "tokenizer_dir=" in report["error"]
    assert "data_dir" not in report["error"]  # the real data has masakhaner2 hau
    assert "make corpus" in report["how_to"]


def test_pretrain_and_finetune_glue_on_cpu(tmp_path, data_dir, monkeypatch):
    """Everything but the GPU: both runs on CPU (device overridden) with tiny settings; the
    report's numbers come from the real run's files and model."""
    from tests.support.pretrain import TEST_SETTINGS, build_inputs

    corpus_dir, tok_dir = build_inputs(tmp_path / "inputs", langs=("hau", "yor"), n=100)
    own = ("train.max_steps", "train.warmup_steps", "train.log_every", "train.eval_every", "train.checkpoint_every")
    pretrain_args = [s for s in TEST_SETTINGS if not s.startswith(own)] + ["train.device=cpu"]
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda: None)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda: 3 * 2**30)
    cfg = GpuCheckConfig(
        corpus_dir=corpus_dir,
        tokenizer_dir=tok_dir,
        data_dir=data_dir,
        out_dir=tmp_path / "g",
        steps=20,
        task="hedderich",
        lang="hau",
        pretrain_args=pretrain_args,
        finetune_args=[
            "train.device=cpu",
            "train.max_train_examples=32",
            "train.max_dev_examples=32",
            "train.max_test_examples=40",
            "train.max_length=32",
            "train.threads=1",
        ],
    )
    assert gpu_check.missing_inputs(cfg) == []
    pre, model_dir = gpu_check.run_pretraining(cfg)
    assert pre["steps"] == 20 and pre["tokens_per_s"] > 0 and pre["peak_memory_gib"] == 3.0
    assert pre["tokens_per_step"] == 4 * 2 * 32
    # flop_parameters is rounded in the report (the head counts at 0.15)
    assert pre["flops_per_token"] == pytest.approx(flops_per_token(pre["flop_parameters"], 2, 32, 32), abs=6)
    assert pre["mfu"] == round(pre["tokens_per_s"] * pre["flops_per_token"] / 989e12, 4)
    assert 0 < pre["flop_parameters"] < pre["parameters"]
    assert pre["fused_adamw"] is True  # pretrain/optim.py fuses on every device
    assert (model_dir / "model.safetensors").exists()
    fine = gpu_check.run_finetuning(cfg, model_dir)
    assert fine["metric"] == "macro_f1" and 0 <= fine["test_score"] <= 100
    assert fine["n_train"] == 32 and fine["n_test"] == 40 and fine["device"] == "cpu"
