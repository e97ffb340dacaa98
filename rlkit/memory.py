"""Peak resident memory of a run: the driver plus every Ray worker process on this node.

Ray actors are not children of the driver, so ``getrusage`` misses them; a
background thread samples the summed RSS (shared pages counted once per
process, so this over-counts shared libraries: an upper bound).
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


def total_rss_bytes() -> int:
    total = 0
    for proc in run_processes():
        try:
            total += proc.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


class PeakMemoryMonitor:
    """Samples :func:`total_rss_bytes` every ``interval_s`` and keeps the peak since the last ``take_peak``."""

    def __init__(self, interval_s: float = 0.5) -> None:
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
