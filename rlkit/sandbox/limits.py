"""Resource limits for one sandboxed program: `Limits`."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Mapping


@dataclass(frozen=True)
class Limits:
    """What one program may use; every bound applies to the whole process tree.

    - ``time_s``: wall-clock seconds before the whole tree is killed (CPU time is
      capped at the same number of seconds, rounded up, per process).
    - ``memory_mb``: resident memory of all processes together (a cgroup when the
      host has one), and the address space of each single process.
    - ``output_kb``: bytes kept from stdout and from stderr each; a program that
      writes more is killed and its status is ``output_limit``.
    - ``nproc``: processes and threads the program may have at once.
    - ``file_size_mb``: largest file the program may write.
    - ``open_files``: file descriptors per process.
    - ``disk_mb``: size of the private, memory-backed work directory (``/tmp``).
    """

    time_s: float = 10.0
    memory_mb: int = 1024
    output_kb: int = 1024
    nproc: int = 32
    file_size_mb: int = 16
    open_files: int = 64
    disk_mb: int = 64

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"Limits.{f.name} must be a number, got {type(value).__name__}")
            if f.name != "time_s" and not isinstance(value, int):
                raise TypeError(f"Limits.{f.name} must be an int, got {value!r}")
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"Limits.{f.name} must be positive and finite, got {value!r}")
        if self.nproc < 2:
            raise ValueError(f"Limits.nproc must be at least 2 (the program and its init), got {self.nproc}")
        if self.open_files < 8:
            raise ValueError(f"Limits.open_files must be at least 8, got {self.open_files}")

    @property
    def cpu_s(self) -> int:
        """The per-process CPU-time rlimit in whole seconds."""
        return max(1, math.ceil(self.time_s))

    def with_(self, **changes: Any) -> Limits:
        """A copy with ``changes`` applied (unknown names raise TypeError)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Limits:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown Limits field(s) {unknown}; known: {sorted(known)}")
        return cls(**data)


#: Limits for compiling untrusted C++: the compiler gets more time and memory
#: than the program, and its output (the binary) may be larger.
COMPILE_LIMITS = Limits(time_s=30.0, memory_mb=2048, output_kb=256, nproc=16, file_size_mb=64, open_files=256)
