"""Start one isolated program, feed it, collect bounded output, kill its whole tree.

`start` launches the sandbox inside a fresh cgroup (the launcher joins it
before bwrap starts, so every descendant is inside); `Started.finish` feeds
the inputs, enforces the wall-clock deadline and the output caps from the
host, and afterwards kills whatever is left and removes the cgroup, so
nothing outlives a run. `execute` is both in one call.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, replace
from typing import Any, Sequence

from rlkit.sandbox.cgroups import Cgroups, RunCgroup
from rlkit.sandbox.isolation import Isolation, Prepared, RunSpec
from rlkit.sandbox.limits import Limits
from rlkit.sandbox.pump import Stream, pump

# On the host: join the run's cgroup(s), then exec the sandbox.
_JOIN_SCRIPT = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"'
_JOIN_FAILED = 125
CHANNEL_FD = "@channel_fd@"  # placeholder in RunSpec.argv for the result channel's descriptor
INPUT_FDS = tuple(f"@input_fd_{i}@" for i in range(4))  # placeholders for input pipes' descriptors


@dataclass
class RawOutcome:
    """Everything observed about one run, before it is classified into a status."""

    returncode: int | None
    stdout: bytes
    stderr: bytes
    channel: bytes
    stdout_truncated: bool
    stderr_truncated: bool
    channel_exceeded: bool
    timed_out: bool
    wall_s: float
    cpu_s: float
    peak_memory_bytes: int
    oom_kills: int
    start_error: str | None = None

    @classmethod
    def collected(cls, streams: tuple[Stream, Stream, Stream], **measured: Any) -> RawOutcome:
        """The outcome of a run whose stdout, stderr and channel were collected in ``streams``."""
        out, err, chan = streams
        return cls(
            stdout=bytes(out.data),
            stderr=bytes(err.data),
            channel=bytes(chan.data),
            stdout_truncated=out.exceeded,
            stderr_truncated=err.exceeded,
            channel_exceeded=chan.exceeded,
            **measured,
        )


def execute(
    *,
    isolation: Isolation,
    cgroups: Cgroups,
    spec: RunSpec,
    stdin: bytes = b"",
    inputs: Sequence[bytes] = (),
    channel_cap: int | None = None,
    stdout_cap: int | None = None,
) -> RawOutcome:
    """Run ``spec`` to completion (`start` then `finish`)."""
    started = start(
        isolation=isolation, cgroups=cgroups, spec=spec, n_inputs=len(inputs), channel_cap=channel_cap,
        stdout_cap=stdout_cap,
    )  # fmt: skip
    return started if isinstance(started, RawOutcome) else started.finish(stdin=stdin, inputs=inputs)


def start(
    *,
    isolation: Isolation,
    cgroups: Cgroups,
    spec: RunSpec,
    n_inputs: int = 0,
    channel_cap: int | None = None,
    stdout_cap: int | None = None,
) -> Started | RawOutcome:
    """Start ``spec``'s sandbox; it may wait for its inputs until `Started.finish` sends them.

    ``n_inputs`` pipes are made whose read ends the program inherits; their
    numbers replace ``INPUT_FDS[i]`` in ``spec.argv``. With ``channel_cap``, a
    result channel is collected too: a pipe whose write end the program
    inherits as `CHANNEL_FD`. ``stdout_cap`` overrides the stdout byte cap
    (default: ``limits.output_kb``). A sandbox that cannot start is returned
    as a finished `RawOutcome` (status ``sandbox_error``).
    """
    inputs = [os.pipe() for _ in range(n_inputs)]
    chan_r, chan_w = os.pipe() if channel_cap is not None else (-1, -1)
    given = {INPUT_FDS[i]: str(r) for i, (r, _) in enumerate(inputs)}
    if chan_w >= 0:
        given[CHANNEL_FD] = str(chan_w)
    inherited = [r for r, _ in inputs] + ([chan_w] if chan_w >= 0 else [])
    spec = replace(spec, pass_fds=[*spec.pass_fds, *inherited], argv=[given.get(a, a) for a in spec.argv])
    began = time.monotonic()
    try:
        spawned = spawn(isolation=isolation, cgroups=cgroups, spec=spec)
    except OSError as e:
        for fd in [chan_r] + [w for _, w in inputs]:
            if fd >= 0:
                os.close(fd)
        return failed_start(f"could not start the sandbox: {e}", time.monotonic() - began)
    finally:
        for fd in inherited:
            os.close(fd)
    caps = (stdout_cap or spec.limits.output_kb * 1024, spec.limits.output_kb * 1024, channel_cap or 0)
    input_ws = [w for _, w in inputs]
    return Started(
        spawned=spawned, mode=isolation.mode, limits=spec.limits, chan_r=chan_r, input_ws=input_ws, caps=caps
    )


@dataclass
class Started:
    """A running sandbox waiting for `finish` (which owns it from then on) or `discard`."""

    spawned: Spawned
    mode: str
    limits: Limits
    chan_r: int
    input_ws: list[int]
    caps: tuple[int, int, int]

    def alive(self) -> bool:
        return self.spawned.proc.poll() is None

    def discard(self) -> None:
        """Kill an unused sandbox and free what it holds."""
        self.spawned.kill()
        reap(self.spawned.proc)
        self._close()

    def finish(self, *, stdin: bytes = b"", inputs: Sequence[bytes] = ()) -> RawOutcome:
        """Feed ``stdin`` and ``inputs``, run to the end (``limits.time_s`` from now), collect the outcome."""
        if len(inputs) != len(self.input_ws):
            raise ValueError(f"{len(self.input_ws)} inputs expected, got {len(inputs)}")
        proc, group = self.spawned.proc, self.spawned.group
        began = time.monotonic()
        stdin_fd = os.dup(proc.stdin.fileno())  # pump owns and closes its writers
        proc.stdin.close()
        writers = {stdin_fd: stdin, **dict(zip(self.input_ws, inputs, strict=True))}
        self.input_ws = []
        out, err, chan = Stream("stdout", self.caps[0]), Stream("stderr", self.caps[1]), Stream("channel", self.caps[2])
        readers = {proc.stdout.fileno(): out, proc.stderr.fileno(): err}
        if self.chan_r >= 0:
            readers[self.chan_r] = chan
        pidfd = os.pidfd_open(proc.pid)
        try:
            timed_out = pump(
                readers=readers,
                writers=writers,
                done_fd=pidfd,
                deadline=began + self.limits.time_s,
                kill=self.spawned.kill,
            )
        finally:
            os.close(pidfd)
            self.spawned.kill()  # before reaping: an unreaped pid cannot be reused by another process
            returncode, cpu_s, maxrss = reap(proc)
            wall_s = time.monotonic() - began
            peak = group.peak_memory_bytes() if group is not None else maxrss
            ooms = group.oom_kills() if group is not None else 0
            cpu_s = group.cpu_seconds() if group is not None else cpu_s
            self._close()
        if returncode == _JOIN_FAILED and group is not None and b"rlkit-join" in err.data:
            return failed_start(f"could not join the run's cgroup: {bytes(err.data).decode(errors='replace')}", wall_s)
        if self.mode == "bwrap" and returncode is not None and 128 < returncode <= 128 + 64:
            returncode = -(returncode - 128)  # bwrap reports a signal-killed program as 128+signal
        return RawOutcome.collected(
            (out, err, chan),
            returncode=returncode,
            timed_out=timed_out,
            wall_s=wall_s,
            cpu_s=cpu_s,
            peak_memory_bytes=peak,
            oom_kills=ooms,
        )

    def _close(self) -> None:
        self.spawned.release()
        for fd in [self.chan_r, *self.input_ws]:
            if fd >= 0:
                os.close(fd)
        self.chan_r, self.input_ws = -1, []


@dataclass
class Spawned:
    """A started sandbox: its host process, its cgroup and its host-side resources."""

    proc: subprocess.Popen
    group: RunCgroup | None
    prepared: Prepared

    def kill(self) -> None:
        """SIGKILL the whole tree (call before reaping the process)."""
        kill_tree(self.proc, self.group)

    def release(self) -> None:
        """After the process is reaped: remove the cgroup and any host work dir."""
        if self.group is not None:
            self.group.remove()
            self.group = None
        self.prepared.close()


def spawn(*, isolation: Isolation, cgroups: Cgroups, spec: RunSpec, stderr: int = subprocess.PIPE) -> Spawned:
    """Start ``spec``'s sandbox (pipes for stdin/stdout) inside a fresh cgroup.

    Raises OSError when it cannot start (nothing is left behind then).
    """
    group = _create_group(cgroups, spec)
    prepared = isolation.prepare(spec)
    argv = prepared.argv
    if group is not None:
        argv = ["/bin/sh", "-c", _JOIN_SCRIPT, "rlkit-join", *group.procs_files, "--", *argv]
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            pass_fds=prepared.pass_fds,
            env={},
            cwd=prepared.cwd,
            start_new_session=True,
            close_fds=True,
        )
    except BaseException:
        prepared.close()
        if group is not None:
            group.remove()
        raise
    prepared.close_fds()
    return Spawned(proc=proc, group=group, prepared=prepared)


def _create_group(cgroups: Cgroups, spec: RunSpec) -> RunCgroup | None:
    limits = spec.limits
    # Memory-backed /tmp is charged to the group too; bwrap, its init and the
    # limits shell need a few pids beside the program's own.
    return cgroups.create(memory_bytes=(limits.memory_mb + limits.disk_mb) << 20, max_pids=limits.nproc + 4)


def reap(proc: subprocess.Popen) -> tuple[int | None, float, int]:
    """Wait for the sandbox process; its rusage includes every descendant it reaped."""
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    except ChildProcessError:
        return proc.returncode, 0.0, 0
    proc.returncode = os.waitstatus_to_exitcode(status)
    for stream in (proc.stdout, proc.stderr):
        stream.close()
    return proc.returncode, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024


def kill_tree(proc: subprocess.Popen, group: RunCgroup | None) -> None:
    """SIGKILL the sandbox's process group (its PID namespace dies with it) and the cgroup.

    The group is signalled only while the process is unreaped: once reaped, its
    pid (and so the group id) may already belong to an unrelated process.
    """
    if proc.returncode is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    if group is not None:
        group.kill_all()


def failed_start(message: str, wall_s: float) -> RawOutcome:
    return RawOutcome(
        returncode=None,
        stdout=b"",
        stderr=message.encode(),
        channel=b"",
        stdout_truncated=False,
        stderr_truncated=False,
        channel_exceeded=False,
        timed_out=False,
        wall_s=wall_s,
        cpu_s=0.0,
        peak_memory_bytes=0,
        oom_kills=0,
        start_error=message,
    )
