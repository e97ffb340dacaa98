"""User modules (reward.module, env.module): named in config, loaded in the driver
and, for rewards, in every pool worker.

A module is either an importable name (``my_pkg.rewards``) or a ``.py`` file. A
file's source is read once and travels as text (:class:`ModuleSource`), so a
worker process or Ray actor on another machine executes the same code without
the file being there.
"""

from __future__ import annotations

import importlib
import os
import sys
import types
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ModuleSource:
    """A reward module to load: ``source`` is None for an importable module ``name``."""

    name: str
    source: str | None = None
    origin: str | None = None


def resolve_module(spec: str) -> ModuleSource:
    """Turn a config ``module`` entry (path to a ``.py`` file or a module name) into a ModuleSource."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"module must be a non-empty string, got {spec!r}")
    path = Path(spec).expanduser()
    if spec.endswith(".py") or path.is_file():
        if not path.is_file():
            raise FileNotFoundError(f"module file {spec!r} does not exist")
        name = path.stem
        if not name.isidentifier():
            raise ValueError(f"module file name {path.name!r} is not a valid module name")
        origin = os.path.realpath(path)
        return ModuleSource(name=name, source=path.read_text(encoding="utf-8"), origin=origin)
    return ModuleSource(name=spec)


def load_module(module: ModuleSource) -> types.ModuleType:
    """Import (or execute the shipped source of) ``module`` once per process; returns it."""
    if module.source is None:
        return importlib.import_module(module.name)
    existing = sys.modules.get(module.name)
    if existing is not None:
        existing_file = getattr(existing, "__file__", None)
        same_file = existing_file is not None and os.path.realpath(existing_file) == module.origin
        if not same_file and getattr(existing, "__rlkit_origin__", None) != module.origin:
            raise ValueError(
                f"module {module.origin!r} is named {module.name!r}, which is already "
                f"imported from {getattr(existing, '__file__', None)!r}; rename the file"
            )
        return existing
    mod = types.ModuleType(module.name)
    mod.__file__ = module.origin
    mod.__rlkit_origin__ = module.origin  # type: ignore[attr-defined]
    sys.modules[module.name] = mod
    try:
        exec(compile(module.source, module.origin or module.name, "exec"), mod.__dict__)
    except BaseException:
        del sys.modules[module.name]
        raise
    return mod
