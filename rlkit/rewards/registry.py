"""Reward registry: name -> function, and the `RewardResult` every reward yields.

A reward is a plain function ``(completion: str, sample: dict, *, <params>)``
returning a number or a :class:`RewardResult`. Parameters are keyword-only and
typed so that config can check them at load::

    @register_reward("my_len")
    def my_len(completion: str, sample: dict, *, target: int = 100) -> float:
        return float(len(completion) <= target)
"""

from __future__ import annotations

import inspect
import math
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pydantic

RewardFn = Callable[..., Any]

SetupFn = Callable[..., None]

_REGISTRY: dict[str, RewardFn] = {}
_SETUPS: dict[str, SetupFn] = {}
_SUCCESS: dict[str, float] = {}


class UnknownRewardError(ValueError, KeyError):
    """No reward is registered under the name; the message lists the known ones."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class RewardResult:
    """One scored item: a finite ``score``, ``error`` (None or what went wrong), ``info``."""

    score: float
    error: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.score, bool) or not isinstance(self.score, (int, float)):
            raise TypeError(f"RewardResult.score must be a float, got {type(self.score).__name__}")
        if not math.isfinite(self.score):
            raise ValueError(f"RewardResult.score must be finite, got {self.score!r}")
        object.__setattr__(self, "score", float(self.score))
        if self.error is not None and (not isinstance(self.error, str) or not self.error):
            raise ValueError("RewardResult.error must be None or a non-empty string")
        if not isinstance(self.info, dict):
            raise TypeError(f"RewardResult.info must be a dict, got {type(self.info).__name__}")


def register_reward(
    name: str, *, setup: SetupFn | None = None, success: float = 1.0
) -> Callable[[RewardFn], RewardFn]:
    """Decorator registering ``fn`` under ``name``; a second, different function is rejected.

    ``setup(**params)``, if given, runs once per worker process and parameter set
    before the first item, outside the per-item timeout (e.g. starting a Lean REPL).
    ``success`` is the score of a correct response (what the SFT term selects by
    default, ``algorithm.sft_threshold``); 1.0 for every built-in.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"reward name must be a non-empty string, got {name!r}")
    if isinstance(success, bool) or not isinstance(success, (int, float)) or not math.isfinite(success):
        raise ValueError(f"reward {name!r}: success must be a finite number, got {success!r}")

    def decorator(fn: RewardFn) -> RewardFn:
        _check_signature(name, fn)
        existing = _REGISTRY.get(name)
        if existing is not None and not _same_function(existing, fn):
            raise ValueError(
                f"reward {name!r} is already registered by "
                f"{existing.__module__}.{existing.__qualname__}"
            )
        _REGISTRY[name] = fn
        _SUCCESS[name] = float(success)
        if setup is not None:
            _SETUPS[name] = setup
        return fn

    return decorator


def get_reward(name: str) -> RewardFn:
    """The function registered as ``name``; unknown names list the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(list_rewards())
        raise UnknownRewardError(f"unknown reward {name!r}; known rewards: {known}") from None


def get_setup(fn: RewardFn) -> SetupFn | None:
    """The setup hook registered with reward function ``fn``, if any."""
    for name, registered in _REGISTRY.items():
        if _same_function(registered, fn):
            return _SETUPS.get(name)
    return None


def reward_success(name: str) -> float:
    """The score reward ``name`` gives a correct response (``register_reward(success=...)``)."""
    get_reward(name)
    return _SUCCESS[name]


def list_rewards() -> list[str]:
    """Registered reward names, sorted."""
    return sorted(_REGISTRY)


def unregister_reward(name: str) -> None:
    """Remove ``name`` from the registry (for tests and notebooks re-defining a reward)."""
    get_reward(name)
    del _REGISTRY[name]
    _SETUPS.pop(name, None)
    _SUCCESS.pop(name, None)


def reward_params(fn: RewardFn) -> dict[str, inspect.Parameter] | None:
    """The keyword-only parameters ``fn`` accepts; None when it takes ``**kwargs`` (any key)."""
    params = inspect.signature(fn).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return {p.name: p for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}


def check_params(name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Validate ``params`` against reward ``name``'s keyword parameters; returns the coerced values.

    Raises ValueError naming an unknown key (and the accepted ones), a missing
    required parameter, or a value that does not fit the parameter's annotation.
    """
    fn = get_reward(name)
    accepted = reward_params(fn)
    if accepted is None:
        return dict(params)
    for key in params:
        if key not in accepted:
            known = ", ".join(sorted(accepted)) or "(none)"
            raise ValueError(f"reward {name!r} has no parameter {key!r}; accepted: {known}")
    for key, param in accepted.items():
        if param.default is inspect.Parameter.empty and key not in params:
            raise ValueError(f"reward {name!r} requires parameter {key!r}")
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolvable annotations: keys are still checked above
        hints = {}
    out = dict(params)
    for key, value in params.items():
        if key in hints:
            try:
                out[key] = pydantic.TypeAdapter(hints[key]).validate_python(value)
            except pydantic.ValidationError as e:
                problem = e.errors()[0]["msg"]
                raise ValueError(f"reward {name!r} parameter {key!r}={value!r}: {problem}") from None
    return out


def to_result(value: Any) -> RewardResult:
    """Normalise what a reward returned (number or RewardResult) into a RewardResult."""
    if isinstance(value, RewardResult):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"reward returned {type(value).__name__}, expected a number or RewardResult")
    return RewardResult(score=float(value))


def _check_signature(name: str, fn: RewardFn) -> None:
    if not callable(fn):
        raise TypeError(f"reward {name!r} must be callable, got {type(fn).__name__}")
    positional = [
        p
        for p in inspect.signature(fn).parameters.values()
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    if len(positional) != 2:
        raise TypeError(
            f"reward {name!r} must take exactly (completion, sample) positionally and its "
            f"parameters keyword-only; got {inspect.signature(fn)}"
        )


def _same_function(a: RewardFn, b: RewardFn) -> bool:
    # Re-importing a module (e.g. a user file loaded again in a worker) re-runs the decorator.
    return a is b or (a.__module__, a.__qualname__) == (b.__module__, b.__qualname__)
