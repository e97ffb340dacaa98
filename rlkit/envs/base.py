"""The environment interface and its registry.

An environment holds one episode's state. The runner calls :meth:`Environment.reset` once with the
dataset row, then :meth:`Environment.step` with the text of each sampled turn::

    @register_env("echo")
    class Echo(Environment):
        stop = ("</echo>",)
        def reset(self, sample): return None          # None: the data config renders the prompt
        def step(self, action):
            if action.endswith("</echo>"):
                return StepResult(observation=action.rsplit("<echo>", 1)[-1][:-7])
            return StepResult(done=True)

``observation`` is text the renderer turns into masked tokens; ``done`` ends the episode;
``reward`` (at the end) replaces the configured reward's score for this trajectory; ``info`` may
carry ``tool_results`` (:class:`ToolResult` list) and ``parse_error`` (bool), counted in metrics.
A user environment lives in a module named by ``env.module`` (a ``.py`` path or an importable
name), loaded like reward modules, whose ``@register_env`` classes become available by name.
"""

from __future__ import annotations

import abc
import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class StepResult:
    observation: str | None = None
    done: bool = False
    reward: float | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.done and self.observation is None:
            raise ValueError("StepResult: an episode that is not done needs an observation")


class Environment(abc.ABC):
    """One episode. Subclasses set ``stop`` (strings that end a turn) and implement reset/step.

    Constructor parameters are keyword-only and come from ``env.params`` in the config.
    """

    stop: tuple[str, ...] = ()

    def reset(self, sample: dict) -> str | list[dict] | None:
        """Start an episode; returns the prompt (text for one user turn, chat messages, or None
        to use the data config's rendering of ``sample``)."""
        return None

    @abc.abstractmethod
    def step(self, action: str) -> StepResult:
        """Act on the model's turn text: an observation for the next turn, or done with the reward."""

    def fork(self) -> "Environment":
        """An independent copy of this episode's state (ARPO branches); override if state is not copyable."""
        return copy.deepcopy(self)

    def close(self) -> None:
        """Release what the episode holds (called once the trajectory and its forks are done)."""


EnvClass = Callable[..., Environment]
_ENVS: dict[str, EnvClass] = {}


def register_env(name: str) -> Callable[[EnvClass], EnvClass]:
    """Register an :class:`Environment` subclass under ``name``; a different class under a taken name is rejected."""

    def decorator(cls: EnvClass) -> EnvClass:
        old = _ENVS.get(name)
        if old is not None and (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
            raise ValueError(f"environment {name!r} is already registered by {old.__module__}.{old.__qualname__}")
        _ENVS[name] = cls
        return cls

    return decorator


def get_env(name: str) -> EnvClass:
    try:
        return _ENVS[name]
    except KeyError:
        known = ", ".join(sorted(_ENVS)) or "(none)"
        raise KeyError(f"unknown environment {name!r}; registered: {known}") from None


def list_envs() -> list[str]:
    return sorted(_ENVS)
