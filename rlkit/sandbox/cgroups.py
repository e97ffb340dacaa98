"""Per-run cgroups: an aggregate memory and process bound for a whole tree.

Per-process rlimits cannot bound a tree: several children under ``RLIMIT_AS``
together exceed it. A cgroup can. `detect_cgroups` finds a writable cgroup v2
(memory + pids controllers) or cgroup v1 (memory and pids hierarchies) below
the calling process's own cgroup, so the host's limits still apply above ours.
Each run gets a child group; the launcher writes its pid into ``procs_files``
before it execs the sandbox, so every descendant starts inside the group.
Without a writable cgroup the sandbox falls back to rlimits (see docs/sandbox.md).
"""

from __future__ import annotations

import atexit
import itertools
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

CgroupKind = Literal["v2", "v1", "none"]
_counter = itertools.count()
_detect_lock = threading.Lock()
_detected: Cgroups | None = None
_V1_CONTROLLERS = {"memory": "memory", "pids": "pids", "cpu": "cpuacct"}  # our key -> v1 controller


@dataclass
class RunCgroup:
    """One run's group: a directory per controller (all the same directory on v2)."""

    kind: CgroupKind
    dirs: dict[str, Path]  # "memory", "pids", "cpu" -> directory
    # v2: the open memory.peak a reset was written to; the kernel keeps the reset per open file.
    _peak_fd: int | None = None

    @property
    def procs_files(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in dict.fromkeys(self.dirs.values())]

    def peak_memory_bytes(self) -> int:
        """Peak memory of the group (since the last `reset_peak`)."""
        if self._peak_fd is not None:
            try:
                return int(os.pread(self._peak_fd, 64, 0).strip() or 0)
            except (OSError, ValueError):
                return 0
        name = "memory.peak" if self.kind == "v2" else "memory.max_usage_in_bytes"
        return _read_int(self.dirs["memory"] / name)

    def usage_bytes(self) -> int:
        """Memory charged to the group now."""
        name = "memory.current" if self.kind == "v2" else "memory.usage_in_bytes"
        return _read_int(self.dirs["memory"] / name)

    def reset_peak(self) -> bool:
        """Restart `peak_memory_bytes` from the current usage (False where the kernel cannot).

        v1: writing ``memory.max_usage_in_bytes`` resets it. v2 (Linux 6.12+):
        a write to ``memory.peak`` resets it for reads through the same open file.
        """
        try:
            if self.kind == "v1":
                _write(self.dirs["memory"] / "memory.max_usage_in_bytes", "0")
                return True
            if self._peak_fd is None:
                self._peak_fd = os.open(self.dirs["memory"] / "memory.peak", os.O_RDWR | os.O_CLOEXEC)
            os.write(self._peak_fd, b"reset\n")
            return True
        except OSError:
            self._close_peak()
            return False

    def _close_peak(self) -> None:
        if self._peak_fd is not None:
            os.close(self._peak_fd)
            self._peak_fd = None

    def set_limits(self, *, memory_bytes: int, max_pids: int) -> None:
        """Change the group's memory and task bounds (OSError if usage is already above them)."""
        set_limits(self, memory_bytes=memory_bytes, max_pids=max_pids)

    def oom_kills(self) -> int:
        name = "memory.events" if self.kind == "v2" else "memory.oom_control"
        return _read_key(self.dirs["memory"] / name, "oom_kill")

    def cpu_seconds(self) -> float:
        if self.kind == "v2":
            return _read_key(self.dirs["cpu"] / "cpu.stat", "usage_usec") / 1e6
        return _read_int(self.dirs["cpu"] / "cpuacct.usage") / 1e9

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in _read(self.dirs["pids"] / "cgroup.procs").split()]
        except FileNotFoundError:
            return []

    def kill_all(self, *, attempts: int = 200) -> None:
        """SIGKILL every process in the group until it is empty (bounded by pids.max)."""
        kill_file = self.dirs["pids"] / "cgroup.kill"
        if self.kind == "v2" and kill_file.exists():
            _write(kill_file, "1")
        for _ in range(attempts):
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.0005)

    def remove(self) -> None:
        """Kill what is left and delete the group's directories."""
        self._close_peak()
        self.kill_all()
        for d in dict.fromkeys(self.dirs.values()):
            for _ in range(100):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:  # EBUSY while the last task is still exiting
                    time.sleep(0.005)


class Cgroups:
    """Creates per-run groups under one base directory per hierarchy."""

    def __init__(self, *, kind: CgroupKind, bases: dict[str, Path], reason: str):
        self.kind = kind
        self.reason = reason
        self._bases = bases  # controller -> base directory of this process's runs

    def create(self, *, memory_bytes: int, max_pids: int) -> RunCgroup | None:
        """A fresh group holding at most ``memory_bytes`` and ``max_pids`` tasks; None without cgroups."""
        if self.kind == "none":
            return None
        name = f"run-{os.getpid()}-{next(_counter)}"
        group = RunCgroup(kind=self.kind, dirs={c: base / name for c, base in self._bases.items()})
        try:
            for d in dict.fromkeys(group.dirs.values()):
                d.mkdir()
            set_limits(group, memory_bytes=memory_bytes, max_pids=max_pids)
        except OSError:
            group.remove()
            raise
        return group

    def close(self) -> None:
        """Delete the (empty) base groups."""
        for base in dict.fromkeys(self._bases.values()):
            try:
                base.rmdir()
            except OSError:
                pass


def set_limits(group: RunCgroup, *, memory_bytes: int, max_pids: int) -> None:
    """Write ``group``'s memory bound (swap included, where the kernel counts it) and task bound."""
    memory_dir = group.dirs["memory"]
    if group.kind == "v2":
        _write(memory_dir / "memory.max", str(memory_bytes))
        _write_if_exists(memory_dir / "memory.swap.max", "0")
    else:
        # v1 refuses a memory limit above memsw's: raise memsw first when growing.
        memsw = memory_dir / "memory.memsw.limit_in_bytes"
        current = _read_int(memory_dir / "memory.limit_in_bytes")
        order = [memsw, memory_dir / "memory.limit_in_bytes"]
        if memory_bytes < current:
            order.reverse()
        for path in order:
            _write_if_exists(path, str(memory_bytes))
    _write(group.dirs["pids"] / "pids.max", str(max_pids))


def detect_cgroups() -> Cgroups:
    """The best writable cgroup setup of this host (v2, then v1, else none, with the reason).

    Detected once per process; the base groups are removed when the process exits.
    """
    global _detected
    with _detect_lock:
        if _detected is None:
            _detected = _detect()
            atexit.register(_detected.close)
        return _detected


def _detect() -> Cgroups:
    mounts = _cgroup_mounts()
    own = _own_cgroup_paths()
    base_name = f"rlkit-sandbox-{os.getpid()}"
    reasons = []
    if "" in mounts.get("cgroup2", {}) and "" in own:
        root = mounts["cgroup2"][""] / own[""].lstrip("/")
        try:
            return _setup_v2(root, base_name)
        except OSError as e:
            reasons.append(f"cgroup v2 at {root}: {e}")
    v1 = mounts.get("cgroup", {})
    if all(c in v1 and c in own for c in _V1_CONTROLLERS.values()):
        bases = {key: v1[c] / own[c].lstrip("/") / base_name for key, c in _V1_CONTROLLERS.items()}
        try:
            for d in bases.values():
                _clean_stale(d.parent)
                d.mkdir(exist_ok=True)
            return Cgroups(kind="v1", bases=bases, reason="cgroup v1 memory+pids+cpuacct")
        except OSError as e:
            reasons.append(f"cgroup v1 at {bases['memory'].parent}: {e}")
    if not reasons:
        reasons.append("no cgroup v2 with memory+pids controllers and no cgroup v1 memory+pids+cpuacct")
    return Cgroups(kind="none", bases={}, reason="; ".join(reasons))


def _setup_v2(own_dir: Path, base_name: str) -> Cgroups:
    controllers = set(_read(own_dir / "cgroup.controllers").split())
    if not {"memory", "pids"} <= controllers:
        raise OSError(f"controllers {sorted(controllers)} lack memory/pids")
    subtree = own_dir / "cgroup.subtree_control"
    if not {"memory", "pids"} <= set(_read(subtree).split()):
        _write(subtree, "+memory +pids")  # EBUSY when our cgroup holds processes itself
    _clean_stale(own_dir)
    base = own_dir / base_name
    base.mkdir(exist_ok=True)
    _write(base / "cgroup.subtree_control", "+memory +pids")
    return Cgroups(kind="v2", bases=dict.fromkeys(_V1_CONTROLLERS, base), reason="cgroup v2 memory+pids")


def _clean_stale(parent: Path) -> None:
    """Remove base groups left by rlkit processes that no longer exist."""
    for entry in parent.glob("rlkit-sandbox-*"):
        pid = entry.name.rsplit("-", 1)[-1]
        if not pid.isdigit() or Path(f"/proc/{pid}").exists():
            continue
        for run in entry.glob("run-*"):
            RunCgroup(kind="v1", dirs={"pids": run}).remove()
        try:
            entry.rmdir()
        except OSError:
            pass


def _cgroup_mounts() -> dict[str, dict[str, Path]]:
    """fstype -> {controller ('' for v2) -> mount point}."""
    found: dict[str, dict[str, Path]] = {}
    for line in _read(Path("/proc/self/mounts")).splitlines():
        parts = line.split()
        if len(parts) < 4 or parts[2] not in ("cgroup", "cgroup2"):
            continue
        if parts[2] == "cgroup2":
            found.setdefault("cgroup2", {})[""] = Path(parts[1])
        else:
            for opt in parts[3].split(","):
                found.setdefault("cgroup", {}).setdefault(opt, Path(parts[1]))
    return found


def _own_cgroup_paths() -> dict[str, str]:
    """controller ('' for v2) -> this process's cgroup path."""
    paths: dict[str, str] = {}
    for line in _read(Path("/proc/self/cgroup")).splitlines():
        _, controllers, path = line.split(":", 2)
        for c in controllers.split(",") if controllers else [""]:
            paths[c.removeprefix("name=")] = path
    return paths


def _read(path: Path) -> str:
    with open(path) as f:
        return f.read()


def _read_key(path: Path, key: str) -> int:
    """The value of ``key`` in a flat-keyed cgroup file (``key value`` lines); 0 when absent."""
    try:
        for line in _read(path).splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def _read_int(path: Path) -> int:
    try:
        return int(_read(path).strip() or 0)
    except (OSError, ValueError):
        return 0


def _write(path: Path, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _write_if_exists(path: Path, text: str) -> None:
    if path.exists():
        _write(path, text)
