"""Start one isolated program, feed it, collect bounded output, kill its whole tree.

`execute` is the one place that owns a run's processes: it joins the run's
cgroup before the sandbox starts, enforces the wall-clock deadline and the
output caps from the host, and afterwards kills whatever is left and removes
the cgroup, so nothing outlives a run.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
from dataclasses import dataclass, replace

from rlkit.sandbox.cgroups import Cgroups, RunCgroup
from rlkit.sandbox.isolation import Isolation, Prepared, RunSpec
from rlkit.sandbox.limits import Limits

# On the host: join the run's cgroup(s), then exec the sandbox.
_JOIN_SCRIPT = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"'
_JOIN_FAILED = 125
_READ_CHUNK = 1 << 16
CHANNEL_FD = "@channel_fd@"  # placeholder in RunSpec.argv for the result channel's descriptor
_EXIT_GRACE_S = 1.0  # after the program exits, how long its output may still drain


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


class _Stream:
    def __init__(self, name: str, cap: int):
        self.name = name
        self.cap = cap
        self.data = bytearray()
        self.exceeded = False

    def add(self, chunk: bytes) -> None:
        room = self.cap - len(self.data)
        if len(chunk) > room:
            self.data += chunk[: max(room, 0)]
            self.exceeded = True
        else:
            self.data += chunk


def execute(
    *,
    isolation: Isolation,
    cgroups: Cgroups,
    spec: RunSpec,
    stdin: bytes = b"",
    channel_cap: int | None = None,
    stdout_cap: int | None = None,
) -> RawOutcome:
    """Run ``spec`` to completion; with ``channel_cap``, also collect a result channel.

    The channel is a pipe whose write end the program inherits; its number
    replaces `CHANNEL_FD` in ``spec.argv``. ``stdout_cap`` overrides the
    stdout byte cap (default: ``limits.output_kb``).
    """
    limits = spec.limits
    chan_r = chan_w = -1
    if channel_cap is not None:
        chan_r, chan_w = os.pipe()
        spec = replace(
            spec,
            pass_fds=[*spec.pass_fds, chan_w],
            argv=[str(chan_w) if a == CHANNEL_FD else a for a in spec.argv],
        )
    start = time.monotonic()
    try:
        spawned = spawn(isolation=isolation, cgroups=cgroups, spec=spec)
    except OSError as e:
        if chan_r >= 0:
            os.close(chan_r)
        return _failed_start(f"could not start the sandbox: {e}", time.monotonic() - start)
    finally:
        if chan_w >= 0:
            os.close(chan_w)
    proc, group = spawned.proc, spawned.group
    try:
        caps = (stdout_cap or limits.output_kb * 1024, limits.output_kb * 1024, channel_cap or 0)
        streams, timed_out = _pump(proc, stdin, chan_r, limits, caps, start, group)
    finally:
        spawned.kill()  # before reaping: an unreaped pid cannot be reused by another process
        returncode, cpu_s, maxrss = _reap(proc)
        wall_s = time.monotonic() - start
        peak = group.peak_memory_bytes() if group is not None else maxrss
        ooms = group.oom_kills() if group is not None else 0
        cpu_s = group.cpu_seconds() if group is not None else cpu_s
        spawned.release()
        if chan_r >= 0:
            os.close(chan_r)
    out, err, chan = streams
    if returncode == _JOIN_FAILED and group is not None and b"rlkit-join" in err.data:
        return _failed_start(f"could not join the run's cgroup: {bytes(err.data).decode(errors='replace')}", wall_s)
    if isolation.mode == "bwrap" and returncode is not None and 128 < returncode <= 128 + 64:
        returncode = -(returncode - 128)  # bwrap reports a signal-killed program as 128+signal
    return RawOutcome(
        returncode=returncode,
        stdout=bytes(out.data),
        stderr=bytes(err.data),
        channel=bytes(chan.data),
        stdout_truncated=out.exceeded,
        stderr_truncated=err.exceeded,
        channel_exceeded=chan.exceeded,
        timed_out=timed_out,
        wall_s=wall_s,
        cpu_s=cpu_s,
        peak_memory_bytes=peak,
        oom_kills=ooms,
    )


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


def _pump(
    proc: subprocess.Popen,
    stdin: bytes,
    chan_r: int,
    limits: Limits,
    caps: tuple[int, int, int],
    start: float,
    group: RunCgroup | None,
) -> tuple[tuple[_Stream, _Stream, _Stream], bool]:
    """Move bytes until the program and its pipes are done, the deadline passes or a cap is hit."""
    out, err, chan = _Stream("stdout", caps[0]), _Stream("stderr", caps[1]), _Stream("channel", caps[2])
    sel = selectors.DefaultSelector()
    readers = {proc.stdout.fileno(): out, proc.stderr.fileno(): err}
    if chan_r >= 0:
        readers[chan_r] = chan
    for fd in readers:
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
    pidfd = os.pidfd_open(proc.pid)
    sel.register(pidfd, selectors.EVENT_READ)
    pending = memoryview(stdin)
    stdin_fd = proc.stdin.fileno()
    if pending:
        os.set_blocking(stdin_fd, False)
        sel.register(stdin_fd, selectors.EVENT_WRITE)
    else:
        proc.stdin.close()
    deadline = start + limits.time_s
    exited_at: float | None = None
    timed_out = False
    try:
        while readers or exited_at is None:
            now = time.monotonic()
            if now >= deadline:
                timed_out = exited_at is None
                break
            if exited_at is not None and now - exited_at > _EXIT_GRACE_S:
                break  # something the program left behind still holds its pipes open
            wait = deadline - now if exited_at is None else min(deadline - now, _EXIT_GRACE_S)
            for key, _ in sel.select(timeout=wait):
                fd = key.fd
                if fd == pidfd:
                    exited_at = time.monotonic()
                    sel.unregister(pidfd)
                elif fd == stdin_fd:
                    try:
                        pending = pending[os.write(fd, pending[:_READ_CHUNK]) :]
                    except (BrokenPipeError, BlockingIOError) as e:
                        if isinstance(e, BrokenPipeError):
                            pending = pending[:0]
                    if not pending:
                        sel.unregister(fd)
                        proc.stdin.close()
                else:
                    try:
                        chunk = os.read(fd, _READ_CHUNK)
                    except BlockingIOError:
                        continue
                    if not chunk:
                        sel.unregister(fd)
                        del readers[fd]
                        continue
                    stream = readers[fd]
                    stream.add(chunk)
                    if stream.exceeded:
                        kill_tree(proc, group)
                        return (out, err, chan), False
    finally:
        sel.close()
        os.close(pidfd)
        if not proc.stdin.closed:
            try:
                proc.stdin.close()
            except BrokenPipeError:
                pass
    if timed_out:
        kill_tree(proc, group)
    return (out, err, chan), timed_out


def _reap(proc: subprocess.Popen) -> tuple[int | None, float, int]:
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


def _failed_start(message: str, wall_s: float) -> RawOutcome:
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
