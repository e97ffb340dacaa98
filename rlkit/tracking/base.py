"""The tracker interface and its registry: ``@register_tracker("name")`` on a class built from the run.

A tracker receives one metrics dict per step and, every ``log.samples_every``
steps, a list of sample records (prompt, completion, reward, advantage, ...).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rlkit.config import ExperimentConfig


@dataclass(frozen=True)
class RunInfo:
    """What a tracker needs to know about the run it records."""

    config: "ExperimentConfig"
    run_dir: Path
    total_steps: int
    start_step: int
    """First step this process logs (> 1 when resumed)."""


class Tracker(ABC):
    """One logging destination. Subclasses override what they support; all calls happen on the driver."""

    @abstractmethod
    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        """Record one step's metrics."""

    def log_samples(self, step: int, samples: list[dict]) -> None:
        """A table of sample records (same keys in each); trackers without tables ignore it."""

    def close(self) -> None:
        """Flush and release files or connections; called once at the end of the run."""


TrackerFactory = Callable[[RunInfo], Tracker]

_TRACKERS: dict[str, TrackerFactory] = {}


def register_tracker(name: str) -> Callable[[TrackerFactory], TrackerFactory]:
    """Register a tracker class (or factory) under ``name``; a second registration of a name is rejected."""

    def decorator(factory: TrackerFactory) -> TrackerFactory:
        existing = _TRACKERS.get(name)
        if existing is not None and existing is not factory:
            raise ValueError(f"tracker {name!r} is already registered by {existing.__module__}.{existing.__qualname__}")
        _TRACKERS[name] = factory
        return factory

    return decorator


def get_tracker(name: str) -> TrackerFactory:
    if name not in _TRACKERS:
        raise KeyError(f"unknown tracker {name!r}; registered: {', '.join(sorted(_TRACKERS))}")
    return _TRACKERS[name]


def plain(value):
    """A JSON-ready number: tensors and numpy scalars become float, ints and bools stay."""
    return float(value) if hasattr(value, "__float__") and not isinstance(value, (int, bool)) else value
