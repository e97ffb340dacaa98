"""Verifiable rewards: a registry of scoring functions, batched scoring with timeouts, built-ins.

```python
from rlkit.rewards import register_reward, get_reward, score_batch
results = score_batch("math", completions, samples, timeout_s=5.0)
```

Built-ins: ``math``, ``format``, ``arithmetic``, ``lean``, ``arpo`` and (with the sandbox)
``code_tests``. The trainer uses :func:`build_reward` on a :class:`RewardConfig`.
"""

import importlib

from rlkit.rewards.config import RewardComponent, RewardConfig
from rlkit.rewards.pool import RewardJob, RewardPool, RewardPoolError
from rlkit.rewards.registry import (
    RewardResult,
    UnknownRewardError,
    get_reward,
    list_rewards,
    register_reward,
    unregister_reward,
)
from rlkit.rewards.samples import RewardInputError
from rlkit.rewards.scorer import RewardScorer, ScoredBatch, build_reward
from rlkit.rewards.scoring import score_batch, shared_pool

_BUILTINS = ("math", "format", "arithmetic", "lean", "code", "arpo")
for _name in _BUILTINS:
    try:
        importlib.import_module(f"rlkit.rewards.{_name}")
    except ModuleNotFoundError as _e:
        # code.py (the `code_tests` reward) ships with the sandbox; without it the rest works.
        if _e.name != "rlkit.rewards.code":
            raise

__all__ = [
    "RewardComponent",
    "RewardConfig",
    "RewardInputError",
    "RewardJob",
    "RewardPool",
    "RewardPoolError",
    "RewardResult",
    "RewardScorer",
    "ScoredBatch",
    "UnknownRewardError",
    "build_reward",
    "get_reward",
    "list_rewards",
    "register_reward",
    "score_batch",
    "shared_pool",
    "unregister_reward",
]
