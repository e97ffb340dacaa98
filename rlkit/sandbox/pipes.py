"""Talking to a long-lived child process over pipes: delimited reads of stdout, the tail of stderr.

Shared by `rlkit.sandbox.isolated_process.IsolatedProcess` and the Lean
checker's plain `LocalProcess`.
"""

from __future__ import annotations

import collections
import os
import selectors
import threading
import time
from typing import BinaryIO, Callable

_CHUNK = 1 << 16


class DelimitedReader:
    """Reads a pipe up to a delimiter, keeping what follows it for the next read."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        os.set_blocking(fd, False)
        self._buffer = bytearray()

    def read_until(
        self,
        delimiter: bytes,
        *,
        timeout_s: float,
        max_bytes: int,
        while_waiting: Callable[[], None] | None = None,
        check_every_s: float = 0.2,
    ) -> bytes:
        """Data up to and including ``delimiter``; what is left at end of file (possibly ``b""``).

        TimeoutError after ``timeout_s``; ValueError past ``max_bytes`` without
        a delimiter. ``while_waiting`` is called at least every ``check_every_s``
        while no delimiter has come (it may raise to stop the read).
        """
        deadline = time.monotonic() + timeout_s
        with selectors.DefaultSelector() as sel:
            sel.register(self._fd, selectors.EVENT_READ)
            while True:
                end = self._buffer.find(delimiter)
                if end >= 0:
                    return self._take(end + len(delimiter))
                if len(self._buffer) > max_bytes:
                    raise ValueError(f"more than {max_bytes} bytes of output without {delimiter!r}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no {delimiter!r} from the process within {timeout_s:g} s")
                if while_waiting is not None:
                    while_waiting()
                    remaining = min(remaining, check_every_s)
                if not sel.select(timeout=remaining):
                    continue
                try:
                    chunk = os.read(self._fd, _CHUNK)
                except BlockingIOError:
                    continue
                if not chunk:
                    return self._take(len(self._buffer))
                self._buffer += chunk

    def _take(self, n: int) -> bytes:
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data


class OutputTail:
    """Drains ``stream`` in a daemon thread (so the writer never blocks), keeping its last ``keep`` bytes."""

    def __init__(self, stream: BinaryIO, *, keep: int = 64 * 1024, name: str = "rlkit-output-tail") -> None:
        self._stream = stream
        self._keep = keep
        self._chunks: collections.deque[bytes] = collections.deque()
        self._size = 0
        self._thread = threading.Thread(target=self._drain, daemon=True, name=name)
        self._thread.start()

    def text(self) -> str:
        return b"".join(self._chunks).decode("utf-8", "replace")

    def join(self, timeout_s: float) -> None:
        self._thread.join(timeout=timeout_s)

    def _drain(self) -> None:
        for chunk in iter(lambda: self._stream.read1(_CHUNK), b""):
            self._chunks.append(chunk)
            self._size += len(chunk)
            while self._size - len(self._chunks[0]) >= self._keep:
                self._size -= len(self._chunks.popleft())
        self._stream.close()
