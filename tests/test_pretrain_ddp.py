"""Data-parallel training under torchrun: 2 CPU processes, gloo backend."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from common.config import ConfigError
from pretrain import checkpoint as ckpt
from pretrain import train
from tests.support.pretrain import build_inputs, final_weights, run_args, same_weights

ENTRY = Path(__file__).resolve().parent / "pretrain_entry.py"
EXTRA = ("train.max_steps=8", "train.grad_accum=1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(inputs, out, env=None) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        f"--master_port={free_port()}",
        str(ENTRY),
        *run_args(*inputs, out, *EXTRA),
    ]
    env = {**os.environ, "AFRO_TEST_RANK_HASH": "1", "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return build_inputs(tmp_path_factory.mktemp("ddp-inputs"), langs=("amh", "yor"), n=100)


@pytest.fixture(scope="module")
def reference(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp") / "run"
    proc = torchrun(inputs, out)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def test_two_ranks_share_selection_and_end_with_identical_weights(reference):
    out = reference
    assert (out / "rank-0.sha256").read_text() == (out / "rank-1.sha256").read_text()
    ids = [json.loads((out / f"rank-{r}.ids.json").read_text()) for r in range(2)]
    assert len(ids[0]) == len(ids[1]) == 8
    for step in range(8):
        (step0, a), (step1, b) = ids[0][step], ids[1][step]
        assert step0 == step1  # both ranks follow rank 0's selection
        assert len(a) == len(b) == 4 and a + b == step0  # and split each step without overlap
    # Rounds of 4 steps (selection.select_every): steps of one round draw from one chosen set.
    assert set(sum((ids[0][s][0] for s in range(4)), [])) != set(sum((ids[0][s][0] for s in range(4, 8)), []))
    assert sorted(p.name for p in (out / "selection").iterdir()) == ["round-000.jsonl", "round-001.jsonl"]
    assert (out / "final" / "model.safetensors").exists()


def test_a_dead_rank_fails_the_job_and_it_resumes_row15(reference, inputs, tmp_path):
    out = tmp_path / "dead-rank"
    proc = torchrun(inputs, out, env={"AFRO_TEST_SIGNAL_AT_STEP": "5:KILL", "AFRO_TEST_SIGNAL_RANK": "1"})
    assert proc.returncode != 0  # the whole job fails (subprocess's timeout bounds a hang)
    assert not (out / "final").exists()
    assert ckpt.find_latest(out / "checkpoints") == out / "checkpoints" / "step-0000003"
    # Another world size cannot continue this data order.
    with pytest.raises(ConfigError, match="written by 2 processes, this run has 1"):
        train.run(train.load_run_config(train.parse_args(run_args(*inputs, out, *EXTRA))))
    proc = torchrun(inputs, out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert same_weights(final_weights(reference), final_weights(out))
    assert (reference / "metrics.jsonl").read_bytes() == (out / "metrics.jsonl").read_bytes()
