"""`WarmPool`: started sandboxes waiting for their program, keyed by their limits."""

from __future__ import annotations

import os
import threading
from typing import Callable

from rlkit.sandbox.limits import Limits
from rlkit.sandbox.process import RawOutcome, Started


class WarmPool:
    """Idle `Started` sandboxes. A caller that took one adds one back, so the pool
    never holds more than the number of callers that ran at the same time."""

    def __init__(self) -> None:
        self._idle: dict[Limits, list[Started]] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._owner = os.getpid()

    def take(self, limits: Limits) -> Started | None:
        """A live idle sandbox for ``limits``, or None (always None in a forked child)."""
        if os.getpid() != self._owner:  # the sandboxes are the parent's children, not ours
            return None
        while True:
            with self._lock:
                idle = self._idle.get(limits)
                started = idle.pop() if idle else None
            if started is None or started.alive():
                return started
            started.discard()  # died while waiting (e.g. killed from outside)

    def add(self, limits: Limits, start: Callable[[Limits], Started | RawOutcome]) -> None:
        """Start one more idle sandbox for ``limits`` (nothing if starting fails)."""
        if os.getpid() != self._owner:
            return
        started = start(limits)
        if isinstance(started, RawOutcome):
            return
        with self._lock:
            if not self._closed:
                self._idle.setdefault(limits, []).append(started)
                return
        started.discard()

    def close(self) -> None:
        """Stop every idle sandbox (only the process that started them can)."""
        if os.getpid() != self._owner:
            return
        with self._lock:
            self._closed = True
            idle = [s for group in self._idle.values() for s in group]
            self._idle.clear()
        for started in idle:
            started.discard()
