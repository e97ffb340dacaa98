"""The ``env:`` and ``rollout.arpo:`` config sections (typed; import without torch).

```yaml
env:
  name: tools                 # a registered environment (built-ins: tools, lean_feedback)
  module: my_env.py           # optional: a .py file or module that registers it (shipped like reward modules)
  params: {tools: [python]}   # keyword arguments of the environment class
  renderer: inline            # inline (ARPO result tags) | chat (a tool/user turn via the chat template)
  max_turns: 4                # sampled turns per trajectory
  max_total_tokens: 1024      # response tokens across turns, observations included
rollout:
  arpo: {budget: 16, initial: 8, beam: 2, alpha: 0.5, beta: 0.2, entropy_tokens: 20, top_logprobs: 10}
```
"""

from __future__ import annotations

import inspect
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ArpoConfig(_Strict):
    """ARPO's entropy-based adaptive rollout (arXiv 2507.19849, section 3.2; algorithms.md section 11)."""

    budget: int = Field(16, ge=1)
    """M: trajectories per prompt (the group size)."""
    initial: int = Field(8, ge=1)
    """N: full rollouts started per prompt; branches and fresh fills make up the rest of M."""
    beam: int = Field(2, ge=2)
    """Z: a branching trajectory continues as itself plus Z-1 copies."""
    alpha: float = Field(0.5, ge=0.0, le=1.0)
    beta: float = Field(0.2, ge=0.0)
    entropy_tokens: int = Field(20, ge=1)
    """k: tokens at the start of a segment whose entropy is measured."""
    top_logprobs: int = Field(10, ge=1, le=20)
    """Log-probs per step the engine returns for the entropy estimate."""

    @model_validator(mode="after")
    def _sizes(self) -> "ArpoConfig":
        if self.initial > self.budget:
            raise ValueError(f"initial ({self.initial}) must be <= budget ({self.budget})")
        return self


class EnvConfig(_Strict):
    module: str | None = None
    """A ``.py`` file or importable module that registers the environment (loaded like reward modules)."""
    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    renderer: Literal["inline", "chat"] = "inline"
    observation_role: Literal["tool", "user"] = "tool"
    """Role of an observation turn with ``renderer: chat``."""
    max_turns: int = Field(4, ge=1)
    max_total_tokens: int | None = Field(None, gt=0)
    """Response tokens across all turns (sampled and inserted); default: up to ``rollout.max_model_len``."""
    tool_workers: int = Field(16, ge=1)
    """Threads that run environment steps (and so tools) of a turn in parallel."""

    @field_validator("name")
    @classmethod
    def _registered(cls, name: str, info: ValidationInfo) -> str:
        _env_class(info.data.get("module"), name)
        return name

    @field_validator("params")
    @classmethod
    def _params(cls, params: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        if "name" not in info.data:  # the name already failed
            return params
        env = _env_class(info.data.get("module"), info.data["name"])
        accepted = {
            p.name: p for p in inspect.signature(env).parameters.values()
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        }  # fmt: skip
        for key in params:
            if key not in accepted:
                known = ", ".join(accepted) or "(none)"
                raise ValueError(f"{key!r}: environment {info.data['name']!r} takes no such parameter; accepted: {known}")
        for key, p in accepted.items():
            if p.default is inspect.Parameter.empty and key not in params:
                raise ValueError(f"{key!r}: environment {info.data['name']!r} requires it")
        return params

    def env_class(self):
        """The registered class (importing ``module`` first, in this process)."""
        return _env_class(self.module, self.name)


def _env_class(module: str | None, name: str):
    from rlkit.envs.base import get_env
    from rlkit.rewards.modules import load_module, resolve_module

    if module:
        try:
            load_module(resolve_module(module))
        except (OSError, ValueError, ImportError) as err:
            raise ValueError(f"cannot load env.module {module!r}: {err}") from None
    import rlkit.envs  # noqa: F401  (the built-ins)

    try:
        return get_env(name)
    except KeyError as err:
        raise ValueError(err.args[0]) from None
