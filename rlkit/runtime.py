"""Compatibility module: what used to live here is in :mod:`rlkit.cluster` (Ray, placement,
engines) and :mod:`rlkit.tracking` (metrics log, logging setup)."""

from __future__ import annotations

from rlkit.cluster.engines import ENGINE_ENV, generate_on_engines, start_engines  # noqa: F401
from rlkit.cluster.ray_init import init_ray  # noqa: F401

# Moved to rlkit.tracking; re-exported for existing imports.
from rlkit.tracking import MetricsLog, setup_logging  # noqa: E402,F401
