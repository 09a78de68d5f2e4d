"""Beam's PortableRunner on this machine: a local job service plus a worker pool.

    python -m bench.portable --port N     (Beam's local job service, same flags)

Beam 2.77's local job service builds its FnApiRunner with one worker and never reads
`direct_num_workers` (FnApiRunner.run_via_runner_api ignores it; only FnApiRunner.run reads it),
so a job sent to it runs in a single SDK worker process whatever the flags say. Started through
this module, the job service passes the job's `direct_num_workers` on, so the PortableRunner can be
measured with the same number of worker processes as the DirectRunner. Benchmark use only.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from apache_beam.options.pipeline_options import DirectOptions
from apache_beam.runners.portability import local_job_service, local_job_service_main
from apache_beam.runners.portability.fn_api_runner import fn_runner


def _invoke_runner_with_workers(job: local_job_service.BeamJob):
    job.set_state(local_job_service.beam_job_api_pb2.JobState.RUNNING)
    runner = fn_runner.FnApiRunner(provision_info=job._provision_info)
    # Options reach the job service untyped (a string), hence int().
    runner._num_workers = int(job.pipeline_options().view_as(DirectOptions).direct_num_workers or 1)
    return runner.run_via_runner_api(job._pipeline_proto, job.pipeline_options())


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports: every socket stays bound until all are chosen, so two calls
    cannot be handed the same port (which would send the worker pool's calls to the job service)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("localhost", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def wait_for_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before listening on port {port}")
        with socket.socket() as sock:
            if sock.connect_ex(("localhost", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout:.0f} s")


@contextmanager
def local_portable_runner(log_dir: Path, workers: int) -> Iterator[tuple[list[str], tuple[int, int]]]:
    """Start a job service and a worker pool; yield (Beam flags for pipeline.run, their pids).

    The worker pool starts SDK workers with the `python` on PATH, so this interpreter's folder
    goes first on PATH.
    """
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    job_port, pool_port = free_ports(2)
    log_dir.mkdir(parents=True, exist_ok=True)
    commands = {
        "job service": [sys.executable, "-m", "bench.portable", "--port", str(job_port)],
        "worker pool": [
            sys.executable,
            "-m",
            "apache_beam.runners.worker.worker_pool_main",
            "--service_port",
            str(pool_port),
        ],
    }
    procs = {}
    try:
        for what, cmd in commands.items():
            log = open(log_dir / f"{what.replace(' ', '_')}.log", "w", encoding="utf-8")
            procs[what] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        wait_for_port(job_port, procs["job service"], "job service")
        wait_for_port(pool_port, procs["worker pool"], "worker pool")
        flags = [
            "--runner=PortableRunner",
            f"--job_endpoint=localhost:{job_port}",
            "--environment_type=EXTERNAL",
            f"--environment_config=localhost:{pool_port}",
            f"--direct_num_workers={workers}",
        ]
        yield flags, (procs["job service"].pid, procs["worker pool"].pid)
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    if not hasattr(local_job_service.BeamJob, "_invoke_runner"):  # Beam internals this relies on
        sys.exit(
            "bench.portable: this apache-beam has no BeamJob._invoke_runner; start "
            "apache_beam.runners.portability.local_job_service_main instead (one SDK worker per job)"
        )
    signal.signal(signal.SIGTERM, lambda *args: sys.exit(0))
    logging.basicConfig(level=logging.INFO)
    local_job_service.BeamJob._invoke_runner = _invoke_runner_with_workers
    local_job_service_main.run(sys.argv[1:])
