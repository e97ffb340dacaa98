"""Name -> function registries with signature checks and parameter validation.

A registry holds functions that share a fixed positional prefix (for a policy
loss: ``logprobs, old_logprobs, advantages``) followed only by keyword-only,
typed parameters with defaults. That shape is checked when a function is
registered, so a config can name only the parameters it changes and a
misspelt parameter fails loudly instead of being swallowed by ``**kwargs``.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["ParameterError", "Registry"]


class ParameterError(ValueError, TypeError):
    """A bad parameter name or value; ``str(err)`` is ``"<param>: <problem>"``.

    It is both a ``ValueError`` (so pydantic validators turn it into a
    validation error) and a ``TypeError`` (what Python raises for an unexpected
    keyword argument).
    """

    def __init__(self, param: str, problem: str) -> None:
        super().__init__(f"{param}: {problem}")
        self.param = param
        self.problem = problem


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def _matches(value: Any, annotation: Any) -> bool:
    """Whether ``value`` fits a simple annotation; unknown annotations accept anything."""
    if annotation is Any or annotation is inspect.Parameter.empty:
        return True
    if annotation is None or annotation is type(None):
        return value is None
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation in (bool, str):
        return isinstance(value, annotation)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arm) for arm in typing.get_args(annotation))
    if origin is tuple:
        args = typing.get_args(annotation)
        if not isinstance(value, (tuple, list)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(v, args[0]) for v in value)
        return len(value) == len(args) and all(_matches(v, a) for v, a in zip(value, args))
    return True


class Registry(Generic[F]):
    """Functions registered under unique names.

    Args:
        kind: what the registry holds, used in messages ("policy loss").
        positional: names of the positional parameters every function takes.
        reserved: keyword names a registered function may not use because the
            caller (e.g. ``compute_policy_loss``) already owns them.
    """

    def __init__(self, kind: str, *, positional: tuple[str, ...], reserved: frozenset[str] = frozenset()) -> None:
        self.kind = kind
        self.positional = positional
        self.reserved = reserved
        self._entries: dict[str, F] = {}

    def register(self, name: str) -> Callable[[F], F]:
        """Decorator adding a function under ``name``; a taken name raises ``ValueError``."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")

        def decorator(fn: F) -> F:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered ({self._entries[name].__qualname__})")
            self._check_signature(name, fn)
            self._entries[name] = fn
            return fn

        return decorator

    def unregister(self, name: str) -> None:
        """Remove ``name`` (e.g. to redefine a custom function in a notebook)."""
        self.get(name)
        del self._entries[name]

    def get(self, name: str) -> F:
        """The function registered as ``name``; an unknown name lists the known ones."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise ValueError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}") from None

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._entries))

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def defaults(self, name: str) -> dict[str, Any]:
        """Keyword parameters of ``name`` with their defaults, in declaration order."""
        sig = inspect.signature(self.get(name))
        return {p.name: p.default for p in sig.parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY}

    def check_params(self, name: str, params: Mapping[str, Any], *, also: tuple[str, ...] = ()) -> None:
        """Raise :class:`ParameterError` for a parameter ``name`` does not take or of the wrong type.

        ``also`` names parameters the caller handles itself: accepted, listed, not type-checked here.
        """
        fn = self.get(name)
        accepted = self.defaults(name)
        hints = _hints(fn)
        for key, value in params.items():
            if key in also:
                continue
            if key not in accepted:
                listed = ", ".join([*accepted, *also]) or "(none)"
                raise ParameterError(key, f"unknown parameter for {self.kind} {name!r}; accepted: {listed}")
            annotation = hints.get(key, Any)
            if not _matches(value, annotation):
                raise ParameterError(key, f"expected {_type_name(annotation)}, got {type(value).__name__} {value!r}")

    def _check_signature(self, name: str, fn: Callable[..., Any]) -> None:
        where = f"{self.kind} {name!r} ({getattr(fn, '__qualname__', fn)})"
        params = list(inspect.signature(fn).parameters.values())
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if len(positional) != len(self.positional):
            raise TypeError(
                f"{where} must take {len(self.positional)} positional parameters ({', '.join(self.positional)})"
            )
        for p in params[len(positional) :]:
            if p.kind is not p.KEYWORD_ONLY:
                raise TypeError(f"{where}: parameter {p.name!r} must be keyword-only (no *args or **kwargs)")
            if p.default is p.empty:
                raise TypeError(f"{where}: keyword parameter {p.name!r} needs a default")
            if p.name in self.reserved:
                raise TypeError(f"{where}: parameter name {p.name!r} is reserved ({', '.join(sorted(self.reserved))})")


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except Exception:  # unresolvable forward references in user code: skip type checks
        return {}
