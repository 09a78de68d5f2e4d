"""Wall time and peak memory of a command together with every process it starts.

Peak memory is the largest sum, over one sample, of the resident set sizes (RSS) of the
command's process tree plus any extra long-lived processes it talks to (a Beam job service and
worker pool). Pages shared between processes count once per process, so the figure is an upper
bound of what the machine needed.
"""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import psutil


ROLES = (
    ("sdk_worker", ("sdk_worker", "SdkHarness")),
    ("job_service", ("bench.portable", "job_service")),
    ("worker_pool", ("worker_pool_main",)),
    ("dask_scheduler", ("distributed.cli.dask_scheduler",)),
    ("dask_worker", ("distributed.cli.dask_worker",)),
)


def role_of(proc: psutil.Process, launcher_pid: int) -> str:
    """launcher (the measured command), sdk_worker, job_service, worker_pool or other."""
    if proc.pid == launcher_pid:
        return "launcher"
    command = " ".join(proc.cmdline())
    role = next((role for role, marks in ROLES if any(mark in command for mark in marks)), "other")
    if role == "other" and proc.parent() is not None and role_of(proc.parent(), launcher_pid) == "dask_worker":
        return "dask_worker"  # the worker processes a Dask nanny spawns (plain multiprocessing commands)
    return role


def tree_rss(roots: list[psutil.Process]) -> dict[int, tuple[str, int]]:
    """{pid: (role, RSS bytes)} over `roots` and all their descendants; roots[0] is the launcher."""
    seen: dict[int, psutil.Process] = {}
    for root in roots:
        try:
            for proc in [root, *root.children(recursive=True)]:
                seen[proc.pid] = proc
        except psutil.Error:
            continue  # the root has ended
    sizes = {}
    for pid, proc in seen.items():
        try:
            sizes[pid] = (role_of(proc, roots[0].pid), proc.memory_info().rss)
        except psutil.Error:
            continue  # ended between listing and reading
    return sizes


class PeakMemory:
    """Samples tree_rss every `interval` seconds in a thread until stopped.

    Keeps the peak of the sum over all processes, and per role the peak RSS of its largest
    process (a runner that buffers shuffled data in the launcher and a worker that holds too
    much state grow in different places).
    """

    def __init__(self, pids: list[int], interval: float = 0.2):
        self.roots = [psutil.Process(pid) for pid in pids]
        self.interval = interval
        self.peak_bytes = 0
        self.peak_processes = 0
        self.peak_by_role: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while True:
            sizes = tree_rss(self.roots)
            self.peak_bytes = max(self.peak_bytes, sum(rss for _, rss in sizes.values()))
            self.peak_processes = max(self.peak_processes, len(sizes))
            for role, rss in sizes.values():
                self.peak_by_role[role] = max(self.peak_by_role.get(role, 0), rss)
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def measure(cmd: list[str], log_path: Path, extra_pids: tuple[int, ...] = (), interval: float = 0.2) -> dict:
    """Run `cmd` (its output goes to `log_path`); return seconds, peak RSS (MiB), process count and
    the peak RSS of the largest process of each role.

    A failed command raises RuntimeError naming the command and its log.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w", encoding="utf-8") as log:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        with PeakMemory([proc.pid, *extra_pids], interval) as memory:
            code = proc.wait()
        seconds = time.perf_counter() - start
    if code != 0:
        tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
        raise RuntimeError(f"{' '.join(cmd)} failed with exit code {code}; log: {log_path}\n" + "\n".join(tail))
    return {
        "seconds": round(seconds, 1),
        "peak_rss_mib": round(memory.peak_bytes / 2**20, 1),
        "peak_processes": memory.peak_processes,
        "largest_process_peak_mib": {role: round(rss / 2**20, 1) for role, rss in sorted(memory.peak_by_role.items())},
    }
