"""Fork servers: one started sandbox runs many programs, each as its own fresh uid.

Starting a sandbox (bubblewrap's namespaces and mounts, a cgroup, an
interpreter and its imports) costs more than most test programs take to
run. On root hosts `ForkServerPool` keeps started sandboxes, each running
`rlkit.sandbox._zygote`, and hands each run to an idle one: the server forks
the program, drops it to a fresh unprivileged uid with no capabilities,
applies its rlimits, and after it exits kills everything of that uid and
empties the work dir before the next run may start (see `_zygote` for the
steps and why a run cannot reach the server). A server serves one run at a
time; concurrent runs use separate servers, so they never share PID, IPC,
network or mount namespaces. A run that times out or overflows its output,
or after which the server cannot prove it clean, stops that server, and
the next run starts a fresh one.

The host enforces the wall-clock deadline and the output caps exactly as
for a one-off sandbox (`rlkit.sandbox.pump`), and the server's cgroup gets
each run's memory and task bounds before the run starts.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import socket
import subprocess
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from rlkit.sandbox.cgroups import Cgroups, RunCgroup
from rlkit.sandbox.isolation import BASE_ENV, Isolation, RunSpec, memfd, random_uid
from rlkit.sandbox.languages import HARNESS_DIR, HARNESS_FILES, HARNESS_PATH, SCRIPT_RUNNER_PATH, PythonRuntime
from rlkit.sandbox.limits import Limits
from rlkit.sandbox.process import CHANNEL_FD, INPUT_FDS, RawOutcome, Spawned, failed_start, reap, spawn
from rlkit.sandbox.pump import Stream, pump

ZYGOTE_PATH = f"{HARNESS_DIR}/_zygote.py"
ZYGOTE_FILES = (*HARNESS_FILES, (str(Path(__file__).with_name("_zygote.py")), ZYGOTE_PATH))
_START_TIMEOUT_S = 30.0
_CLEAN_TIMEOUT_S = 5.0  # how long the server may take to kill and delete what a run left
_SERVER_PIDS = 4  # bwrap, its init, the server and its cleaner, beside the run's own processes
_KILLED = -9


class ForkServerGone(OSError):
    """The server was dead before the run could be handed to it (the run did not start)."""


class ForkServerUnavailable(OSError):
    """No fork server can be started on this host (the run did not start)."""


@dataclass
class _Group:
    """The server cgroup's counters when a run started."""

    cpu_s: float
    oom_kills: int
    usage_bytes: int
    peak_reset: bool  # False: the kernel cannot restart the peak; the run's max RSS stands in


class ForkServer:
    """One started fork-server sandbox (`rlkit.sandbox._zygote`); not thread-safe: one run at a time."""

    def __init__(
        self,
        *,
        isolation: Isolation,
        cgroups: Cgroups,
        python: PythonRuntime,
        ro_binds: Sequence[tuple[str, str]] = (),
        disk_mb: int,
        network: bool = False,
    ):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        spec = RunSpec(
            argv=[python.executable, "-I", "-S", ZYGOTE_PATH, str(theirs.fileno()), HARNESS_PATH, SCRIPT_RUNNER_PATH],
            limits=Limits(disk_mb=disk_mb),
            ro_binds=[*python.binds, *ZYGOTE_FILES, *ro_binds],
            pass_fds=[theirs.fileno()],
            network=network,
            fork_server=True,
        )
        try:
            self._spawned: Spawned | None = spawn(isolation=isolation, cgroups=cgroups, spec=spec)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._spawned.proc.stdin.close()
        self._spawned_pid = self._spawned.proc.pid
        self._sock = ours
        ready = self._receive(_START_TIMEOUT_S)
        if not ready or "ready" not in ready:
            why = self._stderr_tail()
            self.stop()
            raise OSError(f"the fork server did not start: {why or 'no reply'}")
        self.group: RunCgroup | None = self._spawned.group

    @property
    def alive(self) -> bool:
        return self._spawned is not None

    def run(
        self,
        spec: RunSpec,
        *,
        stdin: bytes = b"",
        inputs: Sequence[bytes] = (),
        channel_cap: int | None = None,
        stdout_cap: int | None = None,
    ) -> RawOutcome:
        """Run ``spec`` (same meaning as `rlkit.sandbox.process.execute`) in this server.

        Raises `ForkServerGone` when the server died while idle (the run never started).
        """
        if spec.pass_fds:
            raise ValueError("a fork-server run takes its descriptors from stdin, inputs and the channel only")
        limits = spec.limits
        counters = self._prepare_group(limits)
        # Descriptors the program gets, in order: 0 stdin, 1 stdout, 2 stderr, 3.. inputs, then the channel.
        stdin_r, stdin_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        input_pipes = [os.pipe() for _ in inputs]
        chan_r, chan_w = os.pipe() if channel_cap is not None else (-1, -1)
        given = [stdin_r, out_w, err_w, *(r for r, _ in input_pipes)] + ([chan_w] if chan_w >= 0 else [])
        file_fds = [memfd(content) for content, _ in spec.files.values()]  # same order as request["files"]
        request = _request(spec, n_inputs=len(inputs), n_fds=len(given))
        try:
            socket.send_fds(self._sock, [json.dumps(request).encode()], given + file_fds)
        except OSError as e:
            for fd in [stdin_w, out_r, err_r, chan_r, *(w for _, w in input_pipes)]:
                if fd >= 0:
                    os.close(fd)
            self.stop()
            raise ForkServerGone(f"the fork server is gone: {e}") from e
        finally:
            for fd in given + file_fds:
                os.close(fd)
        began = time.monotonic()
        out = Stream("stdout", stdout_cap or limits.output_kb * 1024)
        err = Stream("stderr", limits.output_kb * 1024)
        chan = Stream("channel", channel_cap or 0)
        readers = {out_r: out, err_r: err} | ({chan_r: chan} if chan_r >= 0 else {})
        writers = {stdin_w: stdin} | {w: data for (_, w), data in zip(input_pipes, inputs, strict=True)}
        measured: list[tuple[float, int, int]] = []

        def kill() -> None:
            measured.append(self._measure(counters, 0))
            self.stop()

        try:
            timed_out = pump(
                readers=readers, writers=writers, done_fd=self._sock.fileno(), deadline=began + limits.time_s,
                kill=kill,
            )  # fmt: skip
            wall_s = time.monotonic() - began
            returncode = self._finish_run(lambda maxrss: measured.append(self._measure(counters, maxrss)))
        finally:
            for fd in readers:
                os.close(fd)
        cpu_s, peak, ooms = measured[0] if measured else (0.0, 0, 0)
        if returncode is None:
            err.data += b"\nrlkit-zygote: the fork server died during the run"
        return RawOutcome.collected(
            (out, err, chan),
            returncode=returncode,
            timed_out=timed_out,
            wall_s=wall_s,
            cpu_s=cpu_s,
            peak_memory_bytes=peak,
            oom_kills=ooms,
        )

    def stop(self) -> None:
        """Kill the server and everything in it; idempotent."""
        spawned, self._spawned = self._spawned, None
        if spawned is None:
            return
        spawned.kill()
        reap(spawned.proc)
        spawned.release()
        self._sock.close()

    # ------------------------------------------------------------------ internals

    def _finish_run(self, measure: Callable[[int], None]) -> int | None:
        """The run's exit code (``-9`` when the host killed it, None when the server died).

        Calls ``measure(max RSS)`` once the run has exited, before its clean-up
        (which may stop the server and remove its cgroup).
        """
        if not self.alive:
            return _KILLED
        exited = self._receive(0.0)
        if not exited or "exited" not in exited:
            measure(0)
            self.stop()
            return None
        measure(int(exited.get("maxrss", 0)))
        cleaned = self._receive(_CLEAN_TIMEOUT_S)
        if not cleaned or cleaned.get("clean") is not True:
            self.stop()
        return os.waitstatus_to_exitcode(exited["exited"])

    def _prepare_group(self, limits: Limits) -> _Group | None:
        group = self.group
        if group is None:
            return None
        usage = group.usage_bytes()
        try:
            group.set_limits(
                memory_bytes=usage + ((limits.memory_mb + limits.disk_mb) << 20), max_pids=limits.nproc + _SERVER_PIDS
            )
        except OSError as e:
            self.stop()
            raise ForkServerGone(f"could not set the fork server's cgroup limits: {e}") from e
        reset = group.reset_peak()
        return _Group(cpu_s=group.cpu_seconds(), oom_kills=group.oom_kills(), usage_bytes=usage, peak_reset=reset)

    def _measure(self, before: _Group | None, maxrss: int) -> tuple[float, int, int]:
        """CPU seconds, peak memory above the idle server, and OOM kills of the run."""
        if before is None or self.group is None:
            return 0.0, maxrss, 0
        group = self.group
        peak = max(group.peak_memory_bytes() - before.usage_bytes, 0) if before.peak_reset else 0
        return group.cpu_seconds() - before.cpu_s, peak or maxrss, group.oom_kills() - before.oom_kills

    def _receive(self, timeout_s: float) -> dict[str, Any] | None:
        """The server's next message, or None on end of file, a bad message or ``timeout_s``."""
        if self._spawned is None:
            return None
        ready, _, _ = select.select([self._sock], [], [], timeout_s)
        if not ready:
            return None
        try:
            data = self._sock.recv(1 << 16)
            message = json.loads(data) if data else None
        except (OSError, ValueError):
            return None
        return message if isinstance(message, dict) else None

    def _stderr_tail(self) -> str:
        proc = self._spawned.proc if self._spawned else None
        if proc is None or proc.stderr is None:
            return ""
        try:
            proc.wait(timeout=1.0)
            return proc.stderr.read(65536).decode(errors="replace").strip()[-2000:]
        except (OSError, subprocess.TimeoutExpired):
            return ""


def _request(spec: RunSpec, *, n_inputs: int, n_fds: int) -> dict[str, Any]:
    """The server's instructions for one run of ``spec`` (its files and pipes travel beside it)."""
    limits = spec.limits
    numbers = {INPUT_FDS[i]: str(3 + i) for i in range(n_inputs)}  # as the server will number them
    numbers[CHANNEL_FD] = str(3 + n_inputs)
    uid = spec.uid if spec.uid is not None else random_uid()
    return {
        "argv": [numbers.get(a, a) for a in spec.argv],
        "main_argv": [numbers.get(a, a) for a in spec.main_argv] if spec.main_argv else None,
        "env": {**BASE_ENV, **spec.env},
        "cwd": spec.cwd,
        "uid": uid,
        "egid": random_uid() if spec.split_gid else uid,
        "limits": {
            "cpu_s": limits.cpu_s,
            "memory_bytes": limits.memory_mb << 20,
            "nproc": limits.nproc,
            "file_bytes": limits.file_size_mb << 20,
            "open_files": limits.open_files,
        },
        "files": [[path, mode] for path, (_, mode) in spec.files.items()],
        "fds": list(range(n_fds)),
    }


class ForkServerPool:
    """Idle fork servers by (work dir size, network); each run takes one and gives it back if still clean.

    Holds at most as many servers as runs that went on at the same time. In
    a forked child the parent's servers are not ours: the child starts its own.
    Servers are started from one long-lived thread: bubblewrap's
    ``--die-with-parent`` fires when the *thread* that started it ends, and
    callers' threads (e.g. `Sandbox.run_many`'s) end after each batch.
    """

    def __init__(self, factory: Callable[[int, bool], ForkServer]):
        self._factory = factory
        self._launcher: ThreadPoolExecutor | None = None
        self._idle: dict[tuple[int, bool], list[ForkServer]] = {}
        self._lock = threading.Lock()
        self._owner = os.getpid()
        self.started = 0
        _live_pools.add(self)

    def run(self, spec: RunSpec, **kwargs: Any) -> RawOutcome:
        """Run ``spec`` in an idle server (or a new one); see `ForkServer.run`.

        Raises `ForkServerUnavailable` when no server can be started.
        """
        key = (spec.limits.disk_mb, spec.network)
        began = time.monotonic()
        for _ in range(3):  # an idle server may have died meanwhile (killed from outside)
            server = self._take(key)
            if server is None:
                try:
                    server = self._launch(key)
                except OSError as e:
                    raise ForkServerUnavailable(f"could not start a fork server: {e}") from e
            try:
                outcome = server.run(spec, **kwargs)
            except ForkServerGone:
                continue
            if server.alive:
                self._give_back(key, server)
            return outcome
        return failed_start("the fork servers kept dying before the run could start", time.monotonic() - began)

    def close(self) -> None:
        """Stop every idle server and the launcher thread; later runs start new ones."""
        if os.getpid() != self._owner:
            return
        with self._lock:
            idle = [s for servers in self._idle.values() for s in servers]
            self._idle.clear()
            launcher, self._launcher = self._launcher, None
        for server in idle:
            server.stop()
        if launcher is not None:
            launcher.shutdown(wait=False)

    def _launch(self, key: tuple[int, bool]) -> ForkServer:
        while True:
            with self._lock:
                if self._launcher is None:
                    self._launcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rlkit-fork-server-launcher")
                launcher = self._launcher
            try:
                future = launcher.submit(self._factory, *key)
            except RuntimeError:  # `close` shut this launcher down meanwhile; the next one serves
                with self._lock:
                    if self._launcher is launcher:
                        self._launcher = None
                continue
            with self._lock:
                self.started += 1
            return future.result()

    def _take(self, key: tuple[int, bool]) -> ForkServer | None:
        self._adopt_after_fork()
        with self._lock:
            servers = self._idle.get(key)
            return servers.pop() if servers else None

    def _give_back(self, key: tuple[int, bool], server: ForkServer) -> None:
        with self._lock:
            if os.getpid() == self._owner:
                self._idle.setdefault(key, []).append(server)
                return
        server.stop()

    def _adopt_after_fork(self) -> None:
        if os.getpid() != self._owner:  # the idle servers are the parent's children, not ours
            self._idle, self._lock, self._owner, self._launcher = {}, threading.Lock(), os.getpid(), None


_live_pools: weakref.WeakSet[ForkServerPool] = weakref.WeakSet()


@atexit.register
def _close_live_pools() -> None:
    """At interpreter exit, stop the servers (and remove their cgroups) of pools still alive."""
    for pool in list(_live_pools):
        pool.close()
