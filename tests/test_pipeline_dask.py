"""The corpus stage on a real Dask cluster: a scheduler and two worker processes on loopback,
started and stopped by the tests. Outputs must equal the DirectRunner's byte for byte, also when
a worker process is killed in the middle of the job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.dask_cluster import DASK_RUNNER, local_cluster, resolve_runner, stop
from pipeline.run import run
from tests.support import REPO_ROOT

distributed = pytest.importorskip("distributed")

# A slice of the real data: several files per source (sona_nbl has 13), copies across the two
# Hausa tweet sources (exact dedup), rejects of most reasons, and one evaluation set that the
# tweets overlap (decontamination), so every step of the graph has work on every runner.
SOURCES = [
    "hausa_tweets_main_hau",
    "hausa_tweets_reply_hau",
    "yoruba_udhr_yor",
    "yoruba_slr86_yor",
    "lingala_songs_lin",
    "sona_nbl",
]
SETTINGS = [f"sources=[{', '.join(SOURCES)}]", "decontam.sets=[afrisenti]"]
WORKERS = 2


def settings(data_dir: Path, out: Path) -> list[str]:
    return [f"data_dir={data_dir}", f"out_dir={out}", *SETTINGS]


def outputs(out: Path) -> dict[str, bytes]:
    """Every published file but the two that name out_dir or time the run."""
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name not in ("manifest.json", "config.yaml")
    }


@pytest.fixture(scope="module")
def direct_outputs(data_dir, tmp_path_factory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("direct") / "corpus"
    run(settings(data_dir, out) + ["--runner=DirectRunner"])
    files = outputs(out)
    assert any(name.endswith(".jsonl.gz") for name in files) and "stats.json" in files
    return files


@pytest.fixture
def dask_cluster(tmp_path):
    """(scheduler address, [scheduler, workers] processes); stopped however the test ends."""
    with local_cluster(tmp_path / "dask-logs", workers=WORKERS) as cluster:
        yield cluster


def test_runner_short_names_resolve_to_the_dask_runner():
    for name in ("DaskRunner", "dask", "Dask"):
        assert resolve_runner([f"--runner={name}"]) == [f"--runner={DASK_RUNNER}", "--dask_partition_size=1"]
    assert resolve_runner(["--runner", "dask", "--dask_npartitions=4"]) == [
        "--runner",
        DASK_RUNNER,
        "--dask_npartitions=4",
    ]
    assert resolve_runner(["--runner=DirectRunner"]) == ["--runner=DirectRunner"]


def test_dask_cluster_output_equals_direct_runner(data_dir, tmp_path, dask_cluster, direct_outputs, capsys):
    address, _ = dask_cluster
    out = tmp_path / "dask"
    manifest = run(settings(data_dir, out) + ["--runner=DaskRunner", f"--dask_client_address={address}"])
    assert outputs(out) == direct_outputs
    assert manifest["totals"]["kept"] > 0
    assert "returns no metrics" in capsys.readouterr().out  # said, not failed


def _worker_pids(client) -> dict[str, int]:
    return client.run(os.getpid)


def _kill_a_busy_worker(address: str, job: subprocess.Popen, timeout: float = 300) -> int:
    """SIGKILL the worker process that is running a task of the job; returns its pid."""
    with distributed.Client(address, timeout=30) as client:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and job.poll() is None:
            busy = [worker for worker, tasks in client.processing().items() if tasks]
            if busy:
                pid = _worker_pids(client)[busy[0]]
                os.kill(pid, signal.SIGKILL)
                return pid
            time.sleep(0.1)
    raise AssertionError(f"no worker got a task before the job ended (exit {job.poll()})")


def test_dask_worker_killed_mid_job_row40(data_dir, tmp_path, dask_cluster, direct_outputs):
    """A killed worker: the job finishes with the DirectRunner's output (Dask reruns the lost
    tasks on the nanny's new process), or fails loudly and publishes nothing, and a rerun is
    complete. Never a partial or silently smaller corpus."""
    address, _ = dask_cluster
    out = tmp_path / "dask"
    cmd = [
        sys.executable,
        "-m",
        "pipeline.run",
        *settings(data_dir, out),
        "--runner=dask",
        f"--dask_client_address={address}",
    ]
    log = tmp_path / "job.log"
    with open(log, "wb") as handle:
        job = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        killed = _kill_a_busy_worker(address, job)
        code = job.wait(timeout=600)
    finally:
        stop(job)
    text = log.read_text(errors="replace")
    with distributed.Client(address, timeout=30) as client:
        client.wait_for_workers(WORKERS, timeout=60)  # the nanny replaced the process
        assert killed not in _worker_pids(client).values()
    if code != 0:  # failed: loudly, and nothing published; the rerun must then be complete
        assert "Error" in text and not (out / "manifest.json").exists()
        assert not list(out.rglob("*.jsonl.gz")) if out.exists() else True
        assert run(settings(data_dir, out) + ["--runner=dask", f"--dask_client_address={address}"])
    assert outputs(out) == direct_outputs, text[-3000:]
