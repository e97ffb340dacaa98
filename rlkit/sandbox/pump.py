"""Move bytes between the host and a running sandbox under a deadline and output caps.

`pump` feeds the program's input pipes, collects its output pipes into
`Stream`s, and returns once the run is over: its end was signalled on
``done_fd`` and every output pipe reached end of file (or a short grace
period passed: something the program left behind may hold a pipe open), the
deadline passed, or an output exceeded its cap. It never waits beyond the
deadline and kills the run (``kill``) when it stops early.
"""

from __future__ import annotations

import os
import selectors
import time
from typing import Callable

READ_CHUNK = 1 << 16
EXIT_GRACE_S = 1.0  # after the program exits, how long its output may still drain


class Stream:
    """One output of the program, kept up to ``cap`` bytes."""

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


def pump(
    *,
    readers: dict[int, Stream],
    writers: dict[int, bytes],
    done_fd: int,
    deadline: float,
    kill: Callable[[], None],
) -> bool:
    """Run until the end (see the module doc); True when the deadline passed first.

    ``writers`` (descriptor -> bytes to write) are closed here once written
    or when pumping stops; ``readers`` are left open. ``done_fd`` becomes
    readable when the run has ended (a pidfd, or the fork server's socket);
    it is not read here.
    """
    sel = selectors.DefaultSelector()
    open_readers = dict(readers)
    for fd in open_readers:
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
    sel.register(done_fd, selectors.EVENT_READ)
    pending = {}
    for fd, data in writers.items():
        if data:
            os.set_blocking(fd, False)
            sel.register(fd, selectors.EVENT_WRITE)
            pending[fd] = memoryview(data)
        else:
            _close(fd)
    ended_at: float | None = None
    timed_out = False
    try:
        while open_readers or ended_at is None:
            now = time.monotonic()
            if now >= deadline:
                timed_out = ended_at is None
                break
            if ended_at is not None and now - ended_at > EXIT_GRACE_S:
                break
            wait = deadline - now if ended_at is None else min(deadline - now, EXIT_GRACE_S)
            for key, _ in sel.select(timeout=wait):
                fd = key.fd
                if fd == done_fd:
                    ended_at = time.monotonic()
                    sel.unregister(done_fd)
                elif fd in pending:
                    try:
                        pending[fd] = pending[fd][os.write(fd, pending[fd][:READ_CHUNK]) :]
                    except BlockingIOError:
                        continue
                    except BrokenPipeError:  # the reader is gone; the rest is of no use
                        pending[fd] = pending[fd][:0]
                    if not pending[fd]:
                        sel.unregister(fd)
                        _close(fd)
                        del pending[fd]
                else:
                    try:
                        chunk = os.read(fd, READ_CHUNK)
                    except BlockingIOError:
                        continue
                    if not chunk:
                        sel.unregister(fd)
                        del open_readers[fd]
                        continue
                    stream = open_readers[fd]
                    stream.add(chunk)
                    if stream.exceeded:
                        kill()
                        return False
    finally:
        sel.close()
        for fd in pending:
            _close(fd)
    if timed_out:
        kill()
    return timed_out


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass
