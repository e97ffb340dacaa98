"""Typed reward config: one reward by name, or weighted components; checked at load.

```yaml
reward:
  name: math                      # or: components: [{name: math, weight: 1.0}, ...]
  params: {extract: boxed}
  timeout_s: 5.0                  # per item, enforced in the worker pool
  module: my_rewards.py           # optional: file or module whose @register_reward run first
```

Loading checks reward names against the registry (after importing the built-ins
and ``module``) and each reward's parameters against its keyword arguments.
Imports no torch.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from rlkit.rewards.modules import ModuleSource, load_module, resolve_module


class RewardComponent(BaseModel):
    """One term of a composite reward: ``weight * reward_name(completion, sample, **params)``."""

    model_config = ConfigDict(extra="forbid")

    name: str
    weight: float = 1.0
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("weight")
    @classmethod
    def _finite_weight(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("weight must be finite")
        return value


class RewardConfig(BaseModel):
    """Which reward(s) score completions, and how the worker pool runs them."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    """A single registered reward (exclusive with ``components``)."""
    components: list[RewardComponent] = Field(default_factory=list)
    """Weighted rewards; the score is ``sum(weight * score)``."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Keyword parameters of the single reward ``name``."""
    timeout_s: float = Field(5.0, gt=0)
    """Per-item wall-clock limit; a hung item's worker process is killed and replaced."""
    workers: int | None = Field(None, ge=1)
    """Worker processes (default: usable CPUs, at most 8)."""
    fallback_score: float = 0.0
    """Score of an item whose reward raised, crashed or timed out."""
    module: str | None = None
    """A ``.py`` file or importable module whose ``@register_reward`` functions are loaded
    here and in every worker process (a file's source travels with the config)."""

    _module_source: ModuleSource | None = PrivateAttr(default=None)

    @field_validator("fallback_score")
    @classmethod
    def _finite_fallback(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("fallback_score must be finite")
        return value

    @model_validator(mode="after")
    def _check_rewards(self) -> RewardConfig:
        if (self.name is None) == (not self.components):
            raise ValueError("give exactly one of `name` (one reward) or `components` (weighted rewards)")
        if self.components and self.params:
            raise ValueError("`params` belongs to a single `name`; give each component its own `params`")
        import rlkit.rewards  # noqa: F401  (registers the built-ins)
        from rlkit.rewards.registry import check_params, get_reward, reward_params

        if self.module is not None:
            try:
                self._module_source = resolve_module(self.module)
                load_module(self._module_source)
            except Exception as e:  # a missing file, an import error, or the module's own failure
                raise ValueError(f"cannot load reward module {self.module!r}: {type(e).__name__}: {e}") from e
        if self.name is not None:
            get_reward(self.name)
            self.params = check_params(self.name, self.params)
        names = [c.name for c in self.components]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"components name the same reward twice: {', '.join(duplicates)}")
        for component in self.components:
            get_reward(component.name)
            component.params = check_params(component.name, component.params)
        for component in self.resolved_components():
            own = _own_timeout(reward_params(get_reward(component.name)), component.params)
            if own is not None and own >= self.timeout_s:
                raise ValueError(
                    f"reward {component.name!r} has its own timeout_s={own}, which must be below "
                    f"reward.timeout_s={self.timeout_s} (the pool kills the item first otherwise)"
                )
        return self

    def resolved_components(self) -> list[RewardComponent]:
        """The components to score: ``[RewardComponent(name, 1.0, params)]`` for a single reward."""
        if self.name is not None:
            return [RewardComponent(name=self.name, weight=1.0, params=dict(self.params))]
        return list(self.components)

    @property
    def success_score(self) -> float:
        """The total score of a correct response: ``sum(weight · success)`` over the components with a
        positive weight (a penalty component adds nothing); the default ``algorithm.sft_threshold``."""
        from rlkit.rewards.registry import reward_success

        return sum(c.weight * reward_success(c.name) for c in self.resolved_components() if c.weight > 0)

    @property
    def module_source(self) -> ModuleSource | None:
        """The user module resolved at load (a file's source text included)."""
        return self._module_source


def _own_timeout(accepted: dict[str, inspect.Parameter] | None, params: dict[str, Any]) -> float | None:
    if accepted is None or "timeout_s" not in accepted:
        return None
    value = params.get("timeout_s", accepted["timeout_s"].default)
    return float(value) if isinstance(value, (int, float)) else None
