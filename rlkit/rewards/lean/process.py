"""How a Lean REPL process is started: launchers by name, all giving one small interface.

``local`` runs the command as a child process (its own process group, killed
with the parent; optional resident-memory cap polled while waiting). ``sandbox``
runs it in :class:`rlkit.sandbox.isolated_process.IsolatedProcess` (bubblewrap,
unprivileged uid, no network, cgroup memory limit), since proof text can run IO
through ``#eval`` before the verdict. Register another with :func:`register_launcher`.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from rlkit.sandbox.pipes import DelimitedReader, OutputTail


class MemoryLimitExceeded(RuntimeError):
    """The REPL's process tree went over its memory cap and was killed."""


class ReplProcess(Protocol):
    """What a REPL session needs from a process (``IsolatedProcess`` has the same shape)."""

    @property
    def alive(self) -> bool: ...

    def write(self, data: bytes) -> None: ...

    def read_until(self, delimiter: bytes, *, timeout_s: float, max_bytes: int = ...) -> bytes: ...

    def stderr_text(self) -> str: ...

    def close(self) -> int | None: ...


@dataclass(frozen=True)
class LaunchSpec:
    """What to start: ``argv`` in ``cwd``, with ``memory_mb`` (None: no cap) and extra read-only paths."""

    argv: tuple[str, ...]
    cwd: str | None = None
    memory_mb: int | None = None
    ro_binds: tuple[str, ...] = ()
    cpu_time_s: float = 86_400.0


Launcher = Callable[[LaunchSpec], ReplProcess]

_LAUNCHERS: dict[str, Launcher] = {}


def register_launcher(name: str) -> Callable[[Launcher], Launcher]:
    """Decorator registering a launcher under ``name``; duplicate names are rejected."""

    def decorator(fn: Launcher) -> Launcher:
        if name in _LAUNCHERS and _LAUNCHERS[name] is not fn:
            raise ValueError(f"launcher {name!r} is already registered")
        _LAUNCHERS[name] = fn
        return fn

    return decorator


def get_launcher(name: str) -> Launcher:
    """The launcher registered as ``name``; unknown names list the known ones."""
    try:
        return _LAUNCHERS[name]
    except KeyError:
        raise ValueError(f"unknown launcher {name!r}; known: {', '.join(sorted(_LAUNCHERS))}") from None


_STDERR_KEEP = 64 * 1024
_PR_SET_PDEATHSIG = 1
try:
    _LIBC: ctypes.CDLL | None = ctypes.CDLL("libc.so.6", use_errno=True)
except OSError:
    _LIBC = None


def _kill_with_parent() -> None:  # runs in the child between fork and exec
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class LocalProcess:
    """A child process in its own process group; ``close`` kills the group.

    With ``memory_mb``, ``read_until`` sums the resident memory of the process
    tree every 0.2 s and kills it past the cap (raising MemoryLimitExceeded).
    """

    def __init__(self, spec: LaunchSpec) -> None:
        self.memory_mb = spec.memory_mb
        self._proc = subprocess.Popen(
            list(spec.argv), cwd=spec.cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True, preexec_fn=_kill_with_parent,
        )  # fmt: skip
        self._stdout = DelimitedReader(self._proc.stdout.fileno())
        self._stderr = OutputTail(self._proc.stderr, keep=_STDERR_KEEP, name="rlkit-lean-stderr")
        self._closed = False

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def alive(self) -> bool:
        return not self._closed and self._proc.poll() is None

    def write(self, data: bytes) -> None:
        self._proc.stdin.write(data)
        self._proc.stdin.flush()

    def read_until(self, delimiter: bytes, *, timeout_s: float, max_bytes: int = 64 << 20) -> bytes:
        """stdout up to and including ``delimiter``; what is left at EOF; TimeoutError after ``timeout_s``."""
        return self._stdout.read_until(
            delimiter, timeout_s=timeout_s, max_bytes=max_bytes, while_waiting=self._check_memory, check_every_s=0.2
        )

    def stderr_text(self) -> str:
        return self._stderr.text()

    def close(self) -> int | None:
        if not self._closed:
            self._closed = True
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self._proc.wait()
            for stream in (self._proc.stdin, self._proc.stdout):
                try:
                    stream.close()
                except OSError:
                    pass
            self._stderr.join(timeout_s=5)
        return self._proc.returncode

    def _check_memory(self) -> None:
        if self.memory_mb is None:
            return
        used = tree_rss_bytes(self._proc.pid)
        if used > self.memory_mb * 2**20:
            self.close()
            raise MemoryLimitExceeded(f"REPL used {used / 2**20:.0f} MiB (limit {self.memory_mb} MiB)")


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` and its descendants (Linux ``/proc``; 0 if unreadable)."""
    total, stack, page = 0, [pid], os.sysconf("SC_PAGE_SIZE")
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * page
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    stack.extend(int(c) for c in f.read().split())
        except (OSError, ValueError, IndexError):
            continue
    return total


@register_launcher("local")
def launch_local(spec: LaunchSpec) -> ReplProcess:
    """Start the REPL as a plain child process."""
    return LocalProcess(spec)


@register_launcher("sandbox")
def launch_sandboxed(spec: LaunchSpec) -> ReplProcess:
    """Start the REPL under the sandbox's isolation; the Lean project (``cwd``) is mounted read-only."""
    from rlkit.sandbox.isolated_process import IsolatedProcess
    from rlkit.sandbox.limits import Limits

    if spec.cwd is None:
        raise ValueError("the sandbox launcher needs `cwd` (the Lean project to mount)")
    binds: Sequence[str] = (spec.cwd, *spec.ro_binds)
    limits = Limits(
        time_s=spec.cpu_time_s, memory_mb=spec.memory_mb or 16384, nproc=64, open_files=1024, output_kb=1 << 16
    )
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    if "ELAN_HOME" in os.environ:  # elan's `lake`/`lean` proxies find their toolchains through it
        env["ELAN_HOME"] = os.environ["ELAN_HOME"]
    return IsolatedProcess(list(spec.argv), limits=limits, ro_binds=list(binds), cwd=spec.cwd, env=env)
