"""Data-parallel training under torchrun: 2 CPU processes, gloo backend."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import selection_stand_in

selection_stand_in.install()

from pretrain_helpers import build_inputs, run_args  # noqa: E402

ENTRY = Path(__file__).resolve().parent / "pretrain_entry.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_share_selection_and_end_with_identical_weights(tmp_path):
    corpus_dir, tok_dir = build_inputs(tmp_path, langs=("amh", "yor"), n=100)
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
           str(ENTRY), *run_args(corpus_dir, tok_dir, out, "train.max_steps=8", "train.grad_accum=1")]
    env = {**os.environ, "AFRO_TEST_RANK_HASH": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
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
