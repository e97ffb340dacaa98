"""The run's fan-out logger: every step's metrics and sample tables go to each configured backend."""

from __future__ import annotations

import importlib
import logging

from rlkit.tracking.base import RunInfo, Tracker, get_tracker

logger = logging.getLogger("rlkit")


class RunLogger(Tracker):
    """Builds ``log.backends`` in order and forwards each call to all of them."""

    def __init__(self, run: RunInfo) -> None:
        self.trackers: list[Tracker] = []
        try:
            for name in run.config.log.backends:
                importlib.import_module(f"rlkit.tracking.{name}")  # registers the built-in backend
                self.trackers.append(get_tracker(name)(run))
        except BaseException:
            self.close()
            raise

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        for tracker in self.trackers:
            tracker.log_metrics(step, metrics)

    def log_samples(self, step: int, samples: list[dict]) -> None:
        for tracker in self.trackers:
            tracker.log_samples(step, samples)

    def close(self) -> None:
        for tracker in reversed(self.trackers):
            try:
                tracker.close()
            except Exception as e:  # one tracker failing to flush must not hide the others' files
                logger.warning("closing tracker %s failed: %s", type(tracker).__name__, e)
        self.trackers = []
