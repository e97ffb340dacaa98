"""A process pool for rewards with a per-item wall-clock timeout that works from any thread.

Each worker is a spawned process that imports the built-in rewards and the
configured user modules, then serves one item at a time over a pipe. The
parent waits on the pipes with a deadline per busy worker: an item past its
deadline has its worker SIGKILLed and replaced, so the timeout needs no
``signal.alarm`` and works in Ray actors, threads and subprocesses alike. A
worker that dies mid-item (segfault, OOM kill) gives that item a crash result.
"""

from __future__ import annotations

import atexit
import collections
import multiprocessing
import multiprocessing.connection
import os
import pickle
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cloudpickle

from rlkit.rewards.modules import ModuleSource
from rlkit.rewards.registry import RewardResult

FAILURE_KEY = "failure"
"""``RewardResult.info[FAILURE_KEY]`` is "error", "timeout" or "crash" for results the pool made."""


class RewardPoolError(RuntimeError):
    """The pool itself cannot run (a worker failed to start); never raised for a bad item."""


@dataclass(frozen=True)
class RewardJob:
    """One item to score: ``reward`` is a registered name or an importable function."""

    reward: str | Callable[..., Any]
    completion: Any
    sample: Any
    params: dict[str, Any] = field(default_factory=dict)


def default_workers() -> int:
    """Usable CPUs, at most 8."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 8))


class _Worker:
    """One worker process: ``python -c <bootstrap>`` talking over a socket pair.

    A fresh interpreter (not ``multiprocessing`` spawn) never re-runs the parent's
    ``__main__``, so pools start the same from scripts, stdin, notebooks and Ray actors.
    """

    def __init__(self, modules: tuple[ModuleSource, ...]) -> None:
        ours, theirs = socket.socketpair()
        bootstrap = (
            f"import sys; sys.path[:0] = {sys.path!r}; "
            f"from rlkit.rewards.worker import worker_main; worker_main({theirs.fileno()}, {os.getpid()})"
        )
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", bootstrap], stdin=subprocess.DEVNULL, pass_fds=(theirs.fileno(),)
            )
        finally:
            theirs.close()
        self.conn = multiprocessing.connection.Connection(ours.detach())
        self.conn.send(modules)
        self.ready = False
        self.started = time.monotonic()
        self.queue: collections.deque[tuple[int, bytes]] = collections.deque()
        self.deadline = 0.0
        self.setups: set[bytes] = set()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            pass
        self.conn.close()

    def describe_exit(self) -> str:
        try:
            code = self.proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            return "still running"
        return f"exit code {code}" if code >= 0 else f"killed by signal {-code}"


class RewardPool:
    """Worker processes that score :class:`RewardJob` s with a per-item timeout.

    ``modules`` are loaded in every worker before it serves (user reward files).
    One batch runs at a time; concurrent callers wait for the pool's lock.
    """

    def __init__(
        self,
        *,
        workers: int | None = None,
        modules: Sequence[ModuleSource] = (),
        start_timeout_s: float = 120.0,
        setup_timeout_s: float = 900.0,
    ) -> None:
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.num_workers = workers or default_workers()
        self.start_timeout_s = start_timeout_s
        self.setup_timeout_s = setup_timeout_s
        self.restarts = 0
        self._modules = tuple(modules)
        self._lock = threading.Lock()
        self._closed = False
        self._start_failures = 0
        self._workers = [_Worker(self._modules) for _ in range(self.num_workers)]
        _LIVE_POOLS.add(self)

    def __enter__(self) -> RewardPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop every worker; the pool cannot be used afterwards."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for w in self._workers:
                try:
                    w.conn.send(None)
                except OSError:
                    pass
            deadline = time.monotonic() + 2.0
            for w in self._workers:
                try:
                    w.proc.wait(timeout=max(0.01, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
                w.kill()
            self._workers = []

    def run(self, jobs: Sequence[RewardJob], *, timeout_s: float, fallback_score: float = 0.0) -> list[RewardResult]:
        """Score ``jobs`` in order; failures become ``fallback_score`` results with ``error`` set."""
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        with self._lock:
            if self._closed:
                raise RewardPoolError("the reward pool is closed")
            return _Batch(self, jobs, timeout_s, fallback_score).run()

    # --- used by _Batch --------------------------------------------------------------------

    def _replace(self, worker: _Worker) -> None:
        worker.kill()
        self.restarts += 1
        self._workers[self._workers.index(worker)] = _Worker(self._modules)


_MAX_START_FAILURES = 3
"""Consecutive worker deaths during start-up before the pool gives up (a broken environment)."""
_PREFETCH = 2
"""Items queued per worker, so it never idles waiting for the parent's next message."""
_PREFETCH_MAX_BYTES = 32 * 1024
"""Only messages this small are queued behind a running item (a larger one could fill the
socket buffer and block the parent past a deadline)."""


class _Batch:
    """The dispatch loop of one ``RewardPool.run`` call.

    Each worker has a FIFO of sent items; the head is the one running, and its
    deadline starts when the previous item's result (or its setup) came back.
    A worker that times out or dies gives its head a failure result; the items
    queued behind it go back to the pending queue.
    """

    def __init__(self, pool: RewardPool, jobs: Sequence[RewardJob], timeout_s: float, fallback: float) -> None:
        self.pool = pool
        self.jobs = jobs
        self.timeout_s = timeout_s
        self.fallback = fallback
        self.results: list[RewardResult | None] = [None] * len(jobs)
        self.pending: collections.deque[int] = collections.deque()
        for w in pool._workers:
            w.queue.clear()
        for i, job in enumerate(jobs):
            problem = _input_problem(job)
            if problem is not None:
                self.results[i] = self._failure("error", problem)
            else:
                self.pending.append(i)

    def run(self) -> list[RewardResult]:
        while self.pending or any(w.queue for w in self.pool._workers):
            self._dispatch()
            self._wait()
        return [r for r in self.results if r is not None]

    def _failure(self, kind: str, message: str) -> RewardResult:
        return RewardResult(score=self.fallback, error=message, info={FAILURE_KEY: kind})

    def _dispatch(self) -> None:
        for w in list(self.pool._workers):
            while w.ready and len(w.queue) < _PREFETCH and self.pending:
                i = self.pending.popleft()
                try:
                    payload, setup_key = self._message(i)
                except Exception as e:  # unpicklable sample, params or reward function
                    self.results[i] = self._failure("error", f"cannot send item to a worker: {_describe(e)}")
                    continue
                if w.queue and len(payload) > _PREFETCH_MAX_BYTES:
                    self.pending.appendleft(i)
                    break
                try:
                    w.conn.send_bytes(payload)
                except OSError:  # the worker died; nothing it was sent has a result yet
                    self.pending.appendleft(i)
                    self._lose(w, None)
                    break
                w.queue.append((i, setup_key))
                if len(w.queue) == 1:
                    self._start_head(w)

    def _message(self, i: int) -> tuple[bytes, bytes]:
        job = self.jobs[i]
        if isinstance(job.reward, str):
            reward_blob = job.reward.encode()
            setup_key = b"name:" + reward_blob
        else:
            # By value: a lambda, closure or a script's __main__ function reaches the worker too.
            reward_blob = cloudpickle.dumps(job.reward)
            setup_key = b"fn:" + reward_blob
        setup_key += pickle.dumps(sorted(job.params.items(), key=lambda kv: kv[0]))
        message = (i, reward_blob, isinstance(job.reward, str), job.params, job.completion, job.sample, setup_key)
        return pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL), setup_key

    def _start_head(self, w: _Worker) -> None:
        needs_setup = w.queue[0][1] not in w.setups
        w.deadline = time.monotonic() + (self.pool.setup_timeout_s if needs_setup else self.timeout_s)

    def _finish_head(self, w: _Worker, result: RewardResult) -> None:
        i, _ = w.queue.popleft()
        self.results[i] = result
        if w.queue:
            self._start_head(w)

    def _lose(self, w: _Worker, head_result: RewardResult | None) -> None:
        """Replace ``w``; its running item gets ``head_result`` (None: retry it), the rest are requeued."""
        if w.queue and head_result is not None:
            i, _ = w.queue.popleft()
            self.results[i] = head_result
        self.pending.extendleft(i for i, _ in reversed(w.queue))
        w.queue.clear()
        self.pool._replace(w)

    def _wait(self) -> None:
        workers = self.pool._workers
        now = time.monotonic()
        deadlines = [w.deadline for w in workers if w.queue]
        deadlines += [w.started + self.pool.start_timeout_s for w in workers if not w.ready]
        timeout = max(0.0, min(deadlines) - now) if deadlines else None
        ready = multiprocessing.connection.wait([w.conn for w in workers], timeout=timeout)
        for w in list(workers):
            if w.conn in ready:
                self._receive(w)
        now = time.monotonic()
        for w in list(self.pool._workers):
            if w.queue and now >= w.deadline:
                self._lose(w, self._failure("timeout", f"timed out after {self.timeout_s:g} s"))
            elif not w.ready and now >= w.started + self.pool.start_timeout_s:
                w.kill()
                raise RewardPoolError(f"a reward worker did not start within {self.pool.start_timeout_s:g} s")

    def _receive(self, w: _Worker) -> None:
        try:
            message = w.conn.recv()
        except (EOFError, OSError, pickle.UnpicklingError):
            if not w.ready:
                self.pool._start_failures += 1
                if self.pool._start_failures >= _MAX_START_FAILURES:
                    raise RewardPoolError(f"reward workers keep dying while starting ({w.describe_exit()})") from None
                self.pool._replace(w)
                return
            self._lose(w, self._failure("crash", f"worker process died ({w.describe_exit()})"))
            return
        kind = message[0]
        if kind == "ready":
            w.ready = True
            self.pool._start_failures = 0
        elif kind == "init_error":
            w.kill()
            raise RewardPoolError(f"a reward worker failed to start:\n{message[1]}")
        elif kind == "setup_done":
            w.setups.add(message[1])
            w.deadline = time.monotonic() + self.timeout_s
        elif kind == "result" and w.queue:
            _, _, result, error = message
            self._finish_head(w, result if error is None else self._failure("error", error))


def _input_problem(job: RewardJob) -> str | None:
    if not isinstance(job.completion, str):
        return f"completion must be a str, got {type(job.completion).__name__}"
    if not isinstance(job.sample, dict):
        return f"sample must be a dict, got {type(job.sample).__name__}"
    return None


def _describe(e: BaseException) -> str:
    text = str(e)
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


_LIVE_POOLS: weakref.WeakSet[RewardPool] = weakref.WeakSet()


@atexit.register
def _close_live_pools() -> None:
    for pool in list(_LIVE_POOLS):
        pool.close()
