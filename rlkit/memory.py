"""Peak memory of a run: the driver plus every Ray worker process on this node.

Ray actors are not children of the driver, so ``getrusage`` misses them; a
background thread samples ``/proc/<pid>/status`` (cheap, unlike smaps) and
sums each process's private memory (``RssAnon``: weights, activations,
optimizer state, KV cache) plus the largest shared-memory set (the weight-sync
file, mapped by learner and engines alike) and the largest file-backed set
(shared libraries), each counted once.
"""

from __future__ import annotations

import os
import threading

import psutil


def run_processes() -> list[psutil.Process]:
    """The driver and this node's Ray worker/actor processes."""
    procs = [psutil.Process(os.getpid())]
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info.get("cmdline") or []
        if cmd and cmd[0].startswith("ray::") and proc.pid != os.getpid():
            procs.append(proc)
    return procs


def _status_kib(pid: int) -> dict[str, int]:
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("RssAnon:", "RssFile:", "RssShmem:")):
                key, value = line.split(":", 1)
                fields[key] = int(value.split()[0])
    return fields


def total_rss_bytes() -> int:
    """Private resident memory of the run's processes plus the largest shared and file-backed sets."""
    private, largest_shmem, largest_file = 0, 0, 0
    for proc in run_processes():
        try:
            kib = _status_kib(proc.pid)
        except OSError:
            continue
        private += kib.get("RssAnon", 0)
        largest_shmem = max(largest_shmem, kib.get("RssShmem", 0))
        largest_file = max(largest_file, kib.get("RssFile", 0))
    return (private + largest_shmem + largest_file) * 1024


class PeakMemoryMonitor:
    """Samples :func:`total_rss_bytes` every ``interval_s`` and keeps the peak since the last ``take_peak``."""

    def __init__(self, interval_s: float = 1.0) -> None:
        self.interval_s = interval_s
        self._peak = 0
        self._run_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rlkit-memory", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            rss = total_rss_bytes()
            self._peak = max(self._peak, rss)
            self._run_peak = max(self._run_peak, rss)

    def take_peak(self) -> tuple[float, float]:
        """(peak GiB since the last call, peak GiB of the whole run)."""
        peak, self._peak = max(self._peak, total_rss_bytes()), 0
        self._run_peak = max(self._run_peak, peak)
        return peak / 2**30, self._run_peak / 2**30

    def stop(self) -> None:
        self._stop.set()
