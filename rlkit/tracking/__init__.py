"""Experiment trackers: ``log.backends: [jsonl, tensorboard, wandb, mlflow]``, several at once.

``RunLogger(RunInfo(...))`` builds each configured backend and fans every call out
to all of them. Register your own with ``@register_tracker("name")`` on a
:class:`Tracker` subclass. The backends' packages are optional extras
(``pip install 'rlkit[wandb]'`` ...); the config refuses a backend whose package is missing.
"""

from __future__ import annotations

import logging
import sys

from rlkit.tracking.base import RunInfo, Tracker, get_tracker, register_tracker
from rlkit.tracking.config import LogConfig, MlflowConfig, TensorBoardConfig, WandbConfig
from rlkit.tracking.jsonl import METRICS_FILE, SAMPLES_FILE, MetricsLog, read_metrics, truncate_after
from rlkit.tracking.logger import RunLogger


def setup_logging() -> None:
    """INFO-level console logging for rlkit's own messages (unless the application configured logging)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


__all__ = [
    "METRICS_FILE",
    "SAMPLES_FILE",
    "LogConfig",
    "MetricsLog",
    "MlflowConfig",
    "RunInfo",
    "RunLogger",
    "TensorBoardConfig",
    "Tracker",
    "WandbConfig",
    "get_tracker",
    "read_metrics",
    "register_tracker",
    "setup_logging",
    "truncate_after",
]
