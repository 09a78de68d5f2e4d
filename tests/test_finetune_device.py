"""Finetuning on a device: the choice of device, bf16, data-parallel sharding, and a CUDA run."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys

import pytest
import torch

import finetune.train as train_module
from common.config import ConfigError, load_config
from finetune.config import FinetuneConfig, TrainConfig
from finetune.data import load_task
from finetune.model import check_model_folder
from finetune.run import COMMAND, main, task_registry
from finetune.train import Encoded, Placement, _collator, _shard_loss, finetune_once, resolve_device, setup_placement
from tests.support import REPO_ROOT
from tests.support.finetune import CLS_ROWS, NER_SENTS, build_tiny_model, write_user_config


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("model") / "final")


@pytest.fixture()
def user_config(tmp_path):
    return write_user_config(tmp_path, ["mysent"], [1])


def read_csv(path):
    with open(path, encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# --- the device setting -----------------------------------------------------------------------


def test_auto_is_cpu_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")


def test_auto_picks_cuda_when_visible(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda") == torch.device("cuda")
    assert resolve_device("cpu") == torch.device("cpu")  # an explicit cpu is kept


def test_cuda_without_cuda_is_refused_naming_the_setting(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match=r"train\.device=cuda.*no CUDA device is visible"):
        resolve_device("cuda")


def test_cuda_refused_before_any_work(tiny_model, user_config, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "out"
    assert main(["--config", str(user_config), f"model={tiny_model}", f"out_dir={out}", "train.device=cuda"]) == 2
    assert "train.device=cuda" in capsys.readouterr().err
    assert not out.exists()  # nothing trained or written


def test_unknown_device_is_a_config_error():
    with pytest.raises(ConfigError, match="device"):
        load_config(FinetuneConfig, None, ["train.device=tpu"])


def test_bf16_is_ignored_on_cpu():
    place = setup_placement(TrainConfig(device="cpu", bf16=True))
    assert place == Placement(torch.device("cpu"), bf16=False, rank=0, world=1)
    assert not torch.is_autocast_enabled("cpu")
    with place.autocast():
        assert not torch.is_autocast_enabled("cpu") and not torch.is_autocast_enabled("cuda")


def test_help_and_docs_list_the_device_settings():
    lines = {line.split()[0]: line for line in COMMAND.help().splitlines() if line.startswith("  train.")}
    assert lines["train.device"].endswith("(default auto)") and lines["train.bf16"].endswith("(default true)")
    docs = (REPO_ROOT / "docs" / "finetune.md").read_text(encoding="utf-8")
    assert "train.device" in docs and "train.bf16" in docs and "torchrun" in docs


# --- CPU behaviour ----------------------------------------------------------------------------


def _data(tiny_model, tmp_path, user_config, task="mysent", lang="yor", **train):
    cfg = load_config(FinetuneConfig, user_config, [f"model={tiny_model}"])
    data = load_task(task_registry(cfg)[task], lang, tmp_path)
    train = TrainConfig(**{"epochs": 2, "batch_size": 4, "max_length": 16, "lr": 1e-3, "threads": 1, **train})
    checked = check_model_folder(tiny_model, train.max_length)
    encoded = {s: Encoded(data, s, checked, train) for s in data.splits}
    return data, checked, encoded, train


def test_cpu_run_is_the_same_whatever_the_device_settings(tiny_model, tmp_path, user_config):
    data, checked, encoded, train = _data(tiny_model, tmp_path, user_config)
    plain = finetune_once(checked, data, encoded, train, seed=3)
    _, _, _, explicit = _data(tiny_model, tmp_path, user_config, device="cpu", bf16=False)
    other = finetune_once(checked, data, encoded, explicit, seed=3, place=setup_placement(explicit))
    assert plain.device == other.device == "cpu"
    assert plain.dev_scores == other.dev_scores and plain.test_predictions == other.test_predictions
    assert plain.test == other.test


def test_cpu_results_are_reused_across_device_settings(tiny_model, user_config, tmp_path, capsys):
    """On one CPU process device/bf16 change nothing, so a finished run is reused."""
    out = tmp_path / "out"
    args = ["--config", str(user_config), f"model={tiny_model}", f"out_dir={out}"]
    assert main(args) == 0
    result = next(out.glob("runs/*/mysent/yor/seed1/result.json"))
    saved = json.loads(result.read_text())
    assert saved["device"] == "cpu" and saved["bf16"] is False and saved["processes"] == 1
    capsys.readouterr()
    assert main(args + ["train.device=cpu", "train.bf16=false", "force=true"]) == 0
    assert "seed 1: reusing" in capsys.readouterr().out
    assert json.loads(result.read_text())["row"] == saved["row"]


# --- data parallel ----------------------------------------------------------------------------


@pytest.mark.parametrize("task, lang", [("mysent", "yor"), ("myner", "mul")])
def test_shard_losses_average_to_the_whole_batch_gradient(tiny_model, tmp_path, user_config, task, lang):
    """What DDP averages over 3 processes equals the single-process gradient of the batch,
    also when a process gets fewer labelled targets or none at all."""
    from transformers import set_seed

    data, checked, encoded, _ = _data(tiny_model, tmp_path, user_config, task=task, lang=lang)
    set_seed(0)
    model = train_module.load_model(checked, data.task.kind, data.labels)
    model.eval()  # no dropout: the same function on every share
    collate = _collator(data.task.kind, checked.tokenizer)
    batch = collate(encoded["train"].features[:4])

    def grads():
        flat = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        model.zero_grad(set_to_none=True)
        return flat

    model(**batch).loss.backward()
    whole = grads()
    world = 3
    total = None
    for rank in range(world):
        _shard_loss(model, batch, Placement(rank=rank, world=world)).backward()
        share = grads()
        total = share if total is None else total + share
    assert torch.allclose(total / world, whole, atol=1e-6, rtol=1e-4)


def test_shard_loss_with_more_processes_than_rows(tiny_model, tmp_path, user_config):
    data, checked, encoded, _ = _data(tiny_model, tmp_path, user_config)
    model = train_module.load_model(checked, data.task.kind, data.labels)
    batch = _collator(data.task.kind, checked.tokenizer)(encoded["train"].features[:2])
    loss = _shard_loss(model, batch, Placement(rank=3, world=4))
    assert loss.item() == 0.0
    loss.backward()  # the whole graph ran, as DDP needs, with zero gradients
    assert all(p.grad is not None and not p.grad.any() for p in model.parameters())


@pytest.mark.slow
def test_torchrun_two_processes_on_cpu(tiny_model, user_config, tmp_path):
    """`torchrun` with gloo: both processes train, predictions are gathered, rank 0 writes."""
    out = tmp_path / "out"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            f"--master_port={port}",
            "-m",
            "finetune.run",
            "--config",
            str(user_config),
            f"model={tiny_model}",
            f"out_dir={out}",
            "tasks=[mysent,myner]",
            "train.device=cpu",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_csv(out / "results.csv")
    assert sorted(r["task"] for r in rows) == ["myner", "mysent"]  # written once, not per process
    for task, lang, n in (("mysent", "yor", len(CLS_ROWS) * 3), ("myner", "mul", len(NER_SENTS) * 3)):
        result = json.loads(next(out.glob(f"runs/*/{task}/{lang}/seed1/result.json")).read_text())
        assert result["processes"] == 2 and result["device"] == "cpu"
        assert result["row"]["n_test"] == n
    assert "cpu, 2 process(es)" in (out / "log.txt").read_text()


# --- on a GPU ---------------------------------------------------------------------------------


@pytest.mark.gpu
def test_finetune_on_cuda(tiny_model, user_config, tmp_path, monkeypatch):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device visible")
    models = []
    real_load = train_module.load_model

    def spy(*args, **kwargs):
        model = real_load(*args, **kwargs)
        models.append(model)
        return model

    monkeypatch.setattr(train_module, "load_model", spy)
    out = tmp_path / "out"
    assert (
        main(
            [
                "--config",
                str(user_config),
                f"model={tiny_model}",
                f"out_dir={out}",
                "tasks=[mysent,myner]",
                "train.device=cuda",
            ]
        )
        == 0
    )
    assert len(models) == 2
    for model in models:
        assert all(p.device.type == "cuda" for p in model.parameters())
    rows = read_csv(out / "results.csv")
    assert sorted(r["task"] for r in rows) == ["myner", "mysent"]
    assert all(0.0 <= float(r["test_score"]) <= 100.0 for r in rows)
    result = json.loads(next(out.glob("runs/*/mysent/yor/seed1/result.json")).read_text())
    assert result["device"].startswith("cuda") and result["bf16"] is True
    assert (out / "manifest.json").exists()
