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


def tree_rss(roots: list[psutil.Process]) -> tuple[int, int]:
    """(bytes of RSS, number of processes) summed over `roots` and all their descendants."""
    seen: dict[int, psutil.Process] = {}
    for root in roots:
        try:
            for proc in [root, *root.children(recursive=True)]:
                seen[proc.pid] = proc
        except psutil.Error:
            continue  # the root has ended
    total = 0
    for proc in seen.values():
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            continue  # ended between listing and reading
    return total, len(seen)


class PeakMemory:
    """Samples tree_rss every `interval` seconds in a thread until stopped."""

    def __init__(self, pids: list[int], interval: float = 0.2):
        self.roots = [psutil.Process(pid) for pid in pids]
        self.interval = interval
        self.peak_bytes = 0
        self.peak_processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while True:
            rss, count = tree_rss(self.roots)
            self.peak_bytes = max(self.peak_bytes, rss)
            self.peak_processes = max(self.peak_processes, count)
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def measure(cmd: list[str], log_path: Path, extra_pids: tuple[int, ...] = (), interval: float = 0.2) -> dict:
    """Run `cmd` (its output goes to `log_path`); return seconds, peak RSS (MB) and process count.

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
    return {"seconds": round(seconds, 1), "peak_rss_mb": round(memory.peak_bytes / 2**20, 1),
            "peak_processes": memory.peak_processes}
