"""`IsolatedProcess`: a long-lived program (Lean REPL, Python tool) under sandbox isolation.

    with IsolatedProcess(["/opt/lean/bin/repl"], ro_binds=["/opt/lean", "/srv/project"],
                         cwd="/srv/project", limits=Limits(time_s=3600, memory_mb=8192)) as p:
        p.write(b'{"cmd": "theorem t : 1 + 1 = 2 := rfl"}\\n\\n')
        reply = p.read_until(b"\\n\\n", timeout_s=30)

The process gets the isolation of `Sandbox` runs (unprivileged uid, no
network, read-only root, private ``/tmp``, seccomp, a cgroup for the tree)
plus the host paths it is given. There is no wall-clock limit on the
process itself: ``limits.time_s`` becomes its CPU-time rlimit, and callers
bound each exchange with ``timeout_s``. `close` kills the whole tree.
"""

from __future__ import annotations

import os
import subprocess
from typing import Mapping, Sequence

from rlkit.sandbox.cgroups import Cgroups, detect_cgroups
from rlkit.sandbox.isolation import WORK_DIR, Isolation, IsolationMode, RunSpec, random_uid
from rlkit.sandbox.limits import Limits
from rlkit.sandbox.pipes import DelimitedReader, OutputTail
from rlkit.sandbox.process import Spawned, spawn

_STDERR_KEEP = 64 * 1024


class IsolatedProcess:
    """Start ``argv`` in the sandbox with pipes on stdin and stdout.

    ``ro_binds``/``rw_binds``: host paths, or ``(host, sandbox)`` pairs, the
    process may read / read and write. When the host runs as root, paths in
    ``rw_binds`` belong to the sandbox's unprivileged uid while the process
    lives (``chown -R``) and are handed back to their owner by `close`. ``env`` adds variables to the
    sandbox's minimal environment; ``network=True`` keeps the host network.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        limits: Limits | None = None,
        ro_binds: Sequence[str | tuple[str, str]] = (),
        rw_binds: Sequence[str | tuple[str, str]] = (),
        env: Mapping[str, str] | None = None,
        cwd: str = WORK_DIR,
        network: bool = False,
        isolation: IsolationMode = "bwrap",
        use_cgroups: bool = True,
        bwrap: str | None = None,
    ):
        if isinstance(argv, str) or not argv or not all(isinstance(a, str) for a in argv):
            raise TypeError(f"argv must be a non-empty list of strings, got {argv!r}")
        self.limits = limits or Limits()
        self._isolation = Isolation(mode=isolation, bwrap=bwrap)
        cgroups = detect_cgroups() if use_cgroups else Cgroups(kind="none", bases={}, reason="disabled")
        ro, rw = _pairs("ro_binds", ro_binds), _pairs("rw_binds", rw_binds)
        spec = RunSpec(
            argv=list(argv), limits=self.limits, ro_binds=ro, rw_binds=rw, env=dict(env or {}), cwd=cwd, network=network
        )
        self._owners: list[tuple[str, int, int]] = []
        if self._isolation.mode == "bwrap" and self._isolation.privileged:
            spec.uid = random_uid()
            for src, _ in rw:
                st = os.lstat(src)
                self._owners.append((src, st.st_uid, st.st_gid))
                _chown_tree(src, spec.uid, spec.uid)
        self._spawned: Spawned = spawn(isolation=self._isolation, cgroups=cgroups, spec=spec)
        self._proc = self._spawned.proc
        self._stdout = DelimitedReader(self._proc.stdout.fileno())
        self._stderr = OutputTail(self._proc.stderr, keep=_STDERR_KEEP, name="rlkit-isolated-stderr")
        self._closed = False

    @property
    def pid(self) -> int:
        """Host pid of the sandbox's outer process (the program itself runs in a PID namespace)."""
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        return self._proc.poll()

    @property
    def alive(self) -> bool:
        return not self._closed and self._proc.poll() is None

    def write(self, data: bytes) -> None:
        """Send ``data`` to the process's stdin; BrokenPipeError if it has exited."""
        self._proc.stdin.write(data)
        self._proc.stdin.flush()

    def readline(self, *, timeout_s: float, max_bytes: int = 16 << 20) -> bytes:
        """The next line of stdout (with its newline; what is left at EOF)."""
        return self.read_until(b"\n", timeout_s=timeout_s, max_bytes=max_bytes)

    def read_until(self, delimiter: bytes, *, timeout_s: float, max_bytes: int = 16 << 20) -> bytes:
        """stdout up to and including ``delimiter``; TimeoutError after ``timeout_s``.

        At end of output returns what is left (possibly ``b""``). More than
        ``max_bytes`` without a delimiter raises ValueError.
        """
        return self._stdout.read_until(delimiter, timeout_s=timeout_s, max_bytes=max_bytes)

    def stderr_text(self) -> str:
        """The last 64 KiB the process wrote to stderr."""
        return self._stderr.text()

    def close(self) -> int | None:
        """Kill the whole tree, reap it, remove its cgroup; returns the exit status."""
        if self._closed:
            return self._proc.returncode
        self._closed = True
        self._spawned.kill()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for stream in (self._proc.stdin, self._proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        self._stderr.join(timeout_s=5)
        self._spawned.release()
        for path, uid, gid in self._owners:  # hand the rw_binds back to their owner
            _chown_tree(path, uid, gid)
        return self._proc.returncode

    def __enter__(self) -> IsolatedProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            self.close()

def _pairs(name: str, binds: Sequence[str | tuple[str, str]]) -> list[tuple[str, str]]:
    out = []
    for b in binds:
        src, dest = (b, b) if isinstance(b, (str, os.PathLike)) else (b[0], b[1])
        src, dest = os.fspath(src), os.fspath(dest)
        if not os.path.isabs(dest):
            raise ValueError(f"{name}: sandbox path {dest!r} must be absolute")
        if not os.path.exists(src):
            raise FileNotFoundError(f"{name}: host path {src!r} does not exist")
        out.append((os.path.abspath(src), dest))
    return out


def _chown_tree(path: str, uid: int, gid: int) -> None:
    os.chown(path, uid, gid, follow_symlinks=False)
    if os.path.isdir(path) and not os.path.islink(path):
        for root, dirs, files in os.walk(path):
            for name in dirs + files:
                os.chown(os.path.join(root, name), uid, gid, follow_symlinks=False)
