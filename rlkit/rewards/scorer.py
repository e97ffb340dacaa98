"""The trainer's reward: weighted components scored through one reusable worker pool.

```python
scorer = build_reward(cfg.reward)
batch = scorer(completions, samples)   # ScoredBatch
batch.scores                           # sum_k weight_k * score_k per item
batch.metrics["reward/math/mean"], batch.first_errors["math"]
scorer.close()
```
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from rlkit.rewards.config import RewardComponent, RewardConfig
from rlkit.rewards.pool import FAILURE_KEY, RewardJob, RewardPool
from rlkit.rewards.registry import RewardResult

logger = logging.getLogger(__name__)


@dataclass
class ScoredBatch:
    """Per-item total scores, per-item per-component results, and metrics for logging."""

    scores: list[float]
    results: list[dict[str, RewardResult]]
    metrics: dict[str, float]
    first_errors: dict[str, str] = field(default_factory=dict)
    """Per component: the first error text of this batch (components without errors absent)."""


class RewardScorer:
    """Scores batches with the configured components; owns its worker pool until ``close()``."""

    def __init__(
        self, cfg: RewardConfig, *, pool: RewardPool | None = None, functions: dict[str, Callable] | None = None
    ) -> None:
        self.cfg = cfg
        self.functions = dict(functions or {})
        """Component name -> a Python callable scored in place of a registered reward (``Trainer(reward_fn=)``)."""
        self.components: list[RewardComponent] = cfg.resolved_components()
        modules = [cfg.module_source] if cfg.module_source is not None else []
        self._owns_pool = pool is None
        self.pool = pool if pool is not None else RewardPool(workers=cfg.workers, modules=modules)

    def __call__(self, completions: Sequence[str], samples: Sequence[dict]) -> ScoredBatch:
        if len(completions) != len(samples):
            raise ValueError(f"{len(completions)} completions but {len(samples)} samples")
        n = len(completions)
        jobs = [
            RewardJob(self.functions.get(c.name, c.name), completions[i], samples[i], c.params)
            for c in self.components
            for i in range(n)
        ]
        flat = self.pool.run(jobs, timeout_s=self.cfg.timeout_s, fallback_score=self.cfg.fallback_score)
        per_component = {c.name: flat[k * n : (k + 1) * n] for k, c in enumerate(self.components)}
        scores = [sum(c.weight * per_component[c.name][i].score for c in self.components) for i in range(n)]
        results = [{c.name: per_component[c.name][i] for c in self.components} for i in range(n)]
        metrics: dict[str, float] = {}
        first_errors: dict[str, str] = {}
        for c in self.components:
            items = per_component[c.name]
            timeouts = sum(1 for r in items if r.info.get(FAILURE_KEY) == "timeout")
            errors = sum(1 for r in items if r.error is not None) - timeouts
            metrics[f"reward/{c.name}/mean"] = sum(r.score for r in items) / n if n else 0.0
            metrics[f"reward/{c.name}/errors"] = float(errors)
            metrics[f"reward/{c.name}/timeouts"] = float(timeouts)
            first = next((r.error for r in items if r.error is not None), None)
            if first is not None:
                first_errors[c.name] = first
                logger.warning(
                    "reward %r: %d errors, %d timeouts in %d items; first: %s", c.name, errors, timeouts, n, first
                )
        return ScoredBatch(scores=scores, results=results, metrics=metrics, first_errors=first_errors)

    def close(self) -> None:
        """Stop the worker pool (if this scorer created it)."""
        if self._owns_pool:
            self.pool.close()

    def __enter__(self) -> RewardScorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def build_reward(cfg: RewardConfig) -> RewardScorer:
    """The scorer for ``cfg`` (the trainer's entry point); starts its worker pool."""
    if cfg is None:
        raise ValueError("reward: required key is missing (give reward.name or reward.components; from Python, "
                         "Trainer(reward_fn=...) also works)")
    return RewardScorer(cfg)
