"""The run-memory monitor sees memory this process allocates."""

from __future__ import annotations

import os
import time

from rlkit.memory import PeakMemoryMonitor, _status_kib


def _own_private_bytes() -> int:
    return _status_kib(os.getpid())["RssAnon"] * 1024


def test_peak_tracks_an_allocation():
    # Compared with this process's own private memory: Ray workers left by
    # earlier tests may exit meanwhile, so the node total can fall.
    own_before = _own_private_bytes()
    monitor = PeakMemoryMonitor(interval_s=0.05)
    block = bytearray(300 * 2**20)
    block[:: 4096] = b"x" * len(block[:: 4096])  # touch every page so it is resident
    time.sleep(0.3)
    assert _own_private_bytes() - own_before > 250 * 2**20
    step_peak, run_peak = monitor.take_peak()
    del block
    monitor.stop()
    assert step_peak * 2**30 > own_before + 250 * 2**20
    assert run_peak >= step_peak
