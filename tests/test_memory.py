"""The run-memory monitor sees memory this process allocates."""

from __future__ import annotations

import time

from rlkit.memory import PeakMemoryMonitor, total_rss_bytes


def test_peak_tracks_an_allocation():
    before = total_rss_bytes()
    monitor = PeakMemoryMonitor(interval_s=0.05)
    block = bytearray(300 * 2**20)
    block[:: 4096] = b"x" * len(block[:: 4096])  # touch every page so it is resident
    time.sleep(0.3)
    step_peak, run_peak = monitor.take_peak()
    del block
    monitor.stop()
    assert step_peak * 2**30 - before > 250 * 2**20
    assert run_peak >= step_peak
