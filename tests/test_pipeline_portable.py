"""The stage through Beam's portability layer: a local job service plus a separate worker pool,
as a Flink/Spark/Dataflow job would run it (`--runner=PortableRunner`). Outputs must equal the
DirectRunner's byte for byte."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bench.portable import free_ports, wait_for_port
from pipeline.run import run
from tests.support import REPO_ROOT
from tests.support.pipeline import fake_sources, make_corpus, run_args  # noqa: F401  (fixture)

# The stage reads the stand-in catalog and reader of tests/support/pipeline.py.
pytestmark = pytest.mark.usefixtures("fake_sources")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)


@pytest.fixture
def portable_services(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    job_port, worker_port = free_ports(2)
    procs = []
    try:
        for module, flag, port in (
            ("apache_beam.runners.portability.local_job_service_main", "--port", job_port),
            ("apache_beam.runners.worker.worker_pool_main", "--service_port", worker_port),
        ):
            log = open(tmp_path / f"{module.rsplit('.', 1)[1]}.log", "wb")
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", module, f"{flag}={port}"],
                    cwd=REPO_ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
            wait_for_port(port, procs[-1], module)
        yield job_port, worker_port
    finally:
        for proc in procs:
            _stop(proc)


def shard_bytes(out: Path) -> dict:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.jsonl.gz"))}


def test_portable_runner_with_external_worker_pool_equals_direct(tmp_path, portable_services):
    job_port, worker_port = portable_services
    data, catalog = make_corpus(tmp_path)
    direct = run(run_args(data, catalog, tmp_path / "direct", "--runner=DirectRunner"))
    portable = run(
        run_args(data, catalog, tmp_path / "portable")
        + [
            "--runner=PortableRunner",
            f"--job_endpoint=localhost:{job_port}",
            "--environment_type=EXTERNAL",
            f"--environment_config=localhost:{worker_port}",
        ]
    )
    assert shard_bytes(tmp_path / "portable") == shard_bytes(tmp_path / "direct") != {}
    assert portable["corpus_hash"] == direct["corpus_hash"]
    assert (tmp_path / "portable" / "stats.json").read_text() == (tmp_path / "direct" / "stats.json").read_text()
