"""`score_batch`: score completions with one reward through a shared worker pool."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rlkit.rewards.pool import RewardJob, RewardPool, default_workers
from rlkit.rewards.registry import RewardResult, check_params

_SHARED: dict[int, RewardPool] = {}
_SHARED_LOCK = threading.Lock()


def shared_pool(workers: int | None = None) -> RewardPool:
    """The process-wide pool with ``workers`` processes (started on first use, closed at exit)."""
    size = workers or default_workers()
    with _SHARED_LOCK:
        pool = _SHARED.get(size)
        if pool is None or pool.closed:
            pool = _SHARED[size] = RewardPool(workers=size)
        return pool


def score_batch(
    name_or_fn: str | Callable[..., Any],
    completions: Sequence[str],
    samples: Sequence[dict],
    timeout_s: float = 5.0,
    workers: int | None = None,
    *,
    params: Mapping[str, Any] | None = None,
    fallback_score: float = 0.0,
    pool: RewardPool | None = None,
) -> list[RewardResult]:
    """Score ``completions[i]`` against ``samples[i]``; same length and order, never raises per item.

    ``name_or_fn`` is a registered reward name or a module-level function (it is
    imported by reference in the worker processes). An item whose reward raises,
    crashes its worker or runs past ``timeout_s`` gets ``fallback_score`` and an
    ``error``. ``pool`` defaults to a shared pool of ``workers`` processes.
    """
    if len(completions) != len(samples):
        raise ValueError(f"{len(completions)} completions but {len(samples)} samples")
    if isinstance(name_or_fn, str):
        checked = check_params(name_or_fn, dict(params or {}))
    elif callable(name_or_fn):
        checked = dict(params or {})
    else:
        raise TypeError(f"name_or_fn must be a reward name or a function, got {type(name_or_fn).__name__}")
    jobs = [RewardJob(name_or_fn, c, s, checked) for c, s in zip(completions, samples)]
    runner = pool if pool is not None else shared_pool(workers)
    return runner.run(jobs, timeout_s=timeout_s, fallback_score=fallback_score)
