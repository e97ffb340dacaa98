"""Rewards with controlled misbehaviour, loaded by the test pool's worker processes."""

from __future__ import annotations

import os
import time

from rlkit.rewards.registry import RewardResult, register_reward


@register_reward("t_len")
def length_reward(completion: str, sample: dict, *, scale: float = 1.0) -> float:
    """len(completion) * scale: a deterministic score to check order and weights."""
    return len(completion) * scale


@register_reward("t_sleep")
def sleep_reward(completion: str, sample: dict, *, seconds: float = 0.0) -> float:
    """Sleeps ``sample.get("sleep", seconds)``, then scores 1.0."""
    time.sleep(float(sample.get("sleep", seconds)))
    return 1.0


@register_reward("t_crash")
def crash_reward(completion: str, sample: dict) -> float:
    """Kills its own worker process when the completion says so."""
    if completion == "crash":
        os._exit(7)
    return 0.5


@register_reward("t_raise")
def raise_reward(completion: str, sample: dict) -> float:
    """Raises ZeroDivisionError for every item."""
    return 1 / 0


@register_reward("t_nan")
def nan_reward(completion: str, sample: dict) -> float:
    """Returns NaN, which the pool must turn into an error."""
    return float("nan")


@register_reward("t_pid")
def pid_reward(completion: str, sample: dict) -> RewardResult:
    """Reports the worker's pid in info, to see which process scored an item."""
    return RewardResult(score=1.0, info={"pid": os.getpid()})


SETUP_CALLS: list[dict] = []


def _setup(*, tag: str = "") -> None:
    SETUP_CALLS.append({"tag": tag})
    time.sleep(1.5)  # slower than the tests' item timeout: must not count against it


@register_reward("t_setup", setup=_setup)
def setup_reward(completion: str, sample: dict, *, tag: str = "") -> RewardResult:
    """Reports how often this worker ran the setup hook."""
    return RewardResult(score=1.0, info={"setups": len(SETUP_CALLS)})


def unregistered_reward(completion: str, sample: dict) -> float:
    """A plain module-level function passed to score_batch by reference."""
    return 2.0 if completion == sample.get("expected") else 0.0
