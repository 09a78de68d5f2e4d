"""Running the corpus stage on Dask: the runner's short name and a local cluster.

    python -m pipeline.dask_cluster [--workers N] -- python -m pipeline.run ... --runner=DaskRunner

starts a Dask scheduler and N worker processes on loopback ports it picks, runs the command with
`--dask_client_address=tcp://127.0.0.1:PORT` added, and stops the cluster afterwards (also when
the command fails). `make corpus RUNNER=dask` uses it; with DASK_ADDRESS it uses that cluster.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

DASK_RUNNER = "apache_beam.runners.dask.dask_runner.DaskRunner"
# Beam only knows its own runners by short name; these mean the DaskRunner (case-insensitive).
RUNNER_ALIASES = {"daskrunner": DASK_RUNNER, "dask": DASK_RUNNER}
# The DaskRunner cuts `beam.Create` into partitions of 128 elements, and every later step keeps
# that partitioning (Reshuffle is a no-op there): one input file a partition spreads the files
# over the workers.
DASK_DEFAULT_FLAGS = ["--dask_partition_size=1"]


def resolve_runner(beam_flags: list[str]) -> list[str]:
    """Beam flags with a Dask short runner name replaced by the DaskRunner's class path, and the
    Dask defaults added when the runner is Dask and the flags do not set partitioning."""
    flags, runner = [], None
    for i, flag in enumerate(beam_flags):
        name = (
            flag.split("=", 1)[1]
            if flag.startswith("--runner=")
            else (flag if i and beam_flags[i - 1] == "--runner" else None)
        )
        if name is not None:
            runner = RUNNER_ALIASES.get(name.lower(), name)
            flag = f"--runner={runner}" if flag.startswith("--runner=") else runner
        flags.append(flag)
    if runner == DASK_RUNNER and not any(f.startswith(("--dask_npartitions", "--dask_partition_size")) for f in flags):
        flags += DASK_DEFAULT_FLAGS
    return flags


def close_dask_client(result) -> None:
    """Close the client the DaskRunner opened and left open: otherwise it keeps trying to reach
    the scheduler after the job (and logs connection errors once the cluster is gone)."""
    client = getattr(result, "client", None)
    if client is not None and hasattr(client, "close"):
        client.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_workers(address: str, count: int, procs: list, timeout: float) -> None:
    from distributed import Client

    deadline = time.monotonic() + timeout
    with Client(address, timeout=timeout) as client:
        while len(client.scheduler_info(n_workers=-1)["workers"]) < count:
            dead = [p.args for p in procs if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                raise RuntimeError(
                    f"dask: {count} workers did not join {address} within {timeout:.0f} s"
                    + (f"; exited: {dead}" if dead else "")
                )
            time.sleep(0.2)


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the process group, SIGKILL it if it lingers (the nanny's worker children too)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)
        except ProcessLookupError:
            pass


@contextmanager
def local_cluster(
    log_dir: Path, workers: int = 2, threads: int = 1, timeout: float = 120.0
) -> Iterator[tuple[str, list[subprocess.Popen]]]:
    """Start `dask scheduler` and `dask worker --nworkers N` on loopback; yield (address, processes).

    Each runs in its own process group, so stopping it also ends the worker processes its nanny
    started; everything is stopped when the block ends, however it ends."""
    port, dashboard = free_port(), free_port()
    address = f"tcp://127.0.0.1:{port}"
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    commands = {
        "scheduler": [
            sys.executable,
            "-m",
            "distributed.cli.dask_scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--dashboard-address",
            f"127.0.0.1:{dashboard}",
        ],
        "workers": [
            sys.executable,
            "-m",
            "distributed.cli.dask_worker",
            address,
            "--nworkers",
            str(workers),
            "--nthreads",
            str(threads),
            "--host",
            "127.0.0.1",
            "--no-dashboard",
        ],
    }
    log_dir.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen] = []
    try:
        for name, cmd in commands.items():
            with open(log_dir / f"dask-{name}.log", "wb") as log:
                procs.append(
                    subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
                )
        _wait_for_workers(address, workers, procs, timeout)
        yield address, procs
    finally:
        for proc in reversed(procs):
            stop(proc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.dask_cluster",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--workers", type=int, default=2, help="worker processes (one thread each)")
    parser.add_argument("--log-dir", type=Path, default=Path("out/dask"), help="scheduler and worker logs")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command to run")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given (put it after --)")
    with local_cluster(args.log_dir, args.workers) as (address, _):
        print(f"dask: local cluster at {address} with {args.workers} workers (logs in {args.log_dir})", flush=True)
        return subprocess.call([*command, f"--dask_client_address={address}"])


if __name__ == "__main__":
    sys.exit(main())
