"""Tools an agent calls: a registry (``@register_tool``) and :func:`call_tool`, which never hangs or raises.

A tool is a function ``(query: str) -> str | bytes`` registered with a timeout and an output cap::

    @register_tool("reverse", timeout_s=2.0, max_output_chars=2000)
    def reverse(query: str) -> str:
        return query[::-1]

``isolation="process"`` (the default) runs each call in a forked child in its own session: a call
that passes its timeout has its whole process group killed, so a tool that sleeps, spins or forks
leaves nothing running. ``isolation="thread"`` is for tools that bound themselves (the ``python``
tool's sandbox kills its program at its own deadline; ``search`` is in-memory); the caller still
stops waiting at the timeout. Every failure (timeout, exception, child crash, non-UTF-8 bytes,
output over the cap) becomes an error observation; the rollout goes on.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Literal

ToolFn = Callable[[str], "str | bytes"]


@dataclass(frozen=True)
class Tool:
    name: str
    fn: ToolFn
    timeout_s: float
    max_output_chars: int
    isolation: Literal["process", "thread"]


@dataclass(frozen=True)
class ToolResult:
    """What a call produced: ``text`` (the observation) and ``error`` (None, or what went wrong)."""

    name: str
    text: str
    error: str | None
    time_s: float

    @property
    def ok(self) -> bool:
        return self.error is None


_TOOLS: dict[str, Tool] = {}


def register_tool(
    name: str, *, timeout_s: float = 10.0, max_output_chars: int = 4000,
    isolation: Literal["process", "thread"] = "process",
) -> Callable[[ToolFn], ToolFn]:  # fmt: skip
    """Register ``fn`` as tool ``name``; a second, different function under the same name is rejected."""
    if timeout_s <= 0 or max_output_chars <= 0:
        raise ValueError(f"tool {name!r}: timeout_s and max_output_chars must be > 0")
    if isolation not in ("process", "thread"):
        raise ValueError(f"tool {name!r}: isolation must be 'process' or 'thread', got {isolation!r}")

    def decorator(fn: ToolFn) -> ToolFn:
        old = _TOOLS.get(name)
        if old is not None and (old.fn.__module__, old.fn.__qualname__) != (fn.__module__, fn.__qualname__):
            raise ValueError(f"tool {name!r} is already registered by {old.fn.__module__}.{old.fn.__qualname__}")
        _TOOLS[name] = Tool(name, fn, float(timeout_s), int(max_output_chars), isolation)
        return fn

    return decorator


def get_tool(name: str) -> Tool:
    try:
        return _TOOLS[name]
    except KeyError:
        raise KeyError(f"unknown tool {name!r}; registered tools: {', '.join(sorted(_TOOLS)) or '(none)'}") from None


def list_tools() -> list[str]:
    return sorted(_TOOLS)


def unregister_tool(name: str) -> None:
    get_tool(name)
    del _TOOLS[name]


def call_tool(name: str, query: str, *, timeout_s: float | None = None) -> ToolResult:
    """Run tool ``name`` on ``query``; returns within its timeout plus about 1 s, whatever the tool does."""
    tool = get_tool(name)
    timeout = tool.timeout_s if timeout_s is None else timeout_s
    started = time.perf_counter()
    if tool.isolation == "process":
        status, value = _run_in_child(tool, query, timeout)
    else:
        status, value = _run_in_thread(tool, query, timeout)
    return _result(tool, status, value, timeout, time.perf_counter() - started)


def _result(tool: Tool, status: str, value, timeout: float, elapsed: float) -> ToolResult:
    size = None
    if isinstance(value, _Sized):
        value, size = value.value, value.size
    if status == "timeout":
        return ToolResult(tool.name, f"error: tool {tool.name} timed out after {timeout:g} s", "timeout", elapsed)
    if status == "raised":
        return ToolResult(tool.name, f"error: tool {tool.name} failed: {value}", "exception", elapsed)
    if status == "crashed":
        return ToolResult(tool.name, f"error: tool {tool.name} crashed ({value})", "crash", elapsed)
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError as err:
            if size is not None and size > len(value) and err.start >= len(value) - 3:
                value = value[: err.start].decode("utf-8")  # the cut split a character
            else:
                text = f"error: tool {tool.name} returned bytes that are not UTF-8 ({err.reason} at byte {err.start})"
                return ToolResult(tool.name, text, "not_utf8", elapsed)
    if not isinstance(value, str):
        return ToolResult(tool.name, f"error: tool {tool.name} returned {type(value).__name__}, not text", "type", elapsed)
    size = max(size or 0, len(value))
    if size > tool.max_output_chars:
        kept = value[: tool.max_output_chars]
        text = f"{kept}\n[error: output truncated: {size} characters or bytes, cap {tool.max_output_chars}]"
        return ToolResult(tool.name, text, "output_cap", elapsed)
    return ToolResult(tool.name, value, None, elapsed)


# ------------------------------------------------------------------ thread isolation

_THREADS = ThreadPoolExecutor(max_workers=32, thread_name_prefix="rlkit-tool")


def _run_in_thread(tool: Tool, query: str, timeout: float):
    future = _THREADS.submit(tool.fn, query)
    try:
        return "ok", future.result(timeout=timeout)
    except FutureTimeout:
        return "timeout", None
    except Exception as err:  # noqa: BLE001 - any tool failure becomes an observation
        return "raised", _last_line(err)


# ------------------------------------------------------------------ process isolation

def _run_in_child(tool: Tool, query: str, timeout: float):
    ctx = multiprocessing.get_context("fork")
    reader, writer = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child_main, args=(tool, query, writer), daemon=True)
    child.start()
    writer.close()
    try:
        status, value = _await_child(child, reader, timeout)
        if status == "ok":
            value = _Sized(*value)
        return status, value
    finally:
        reader.close()
        _kill_group(child)


def _await_child(child, reader, timeout: float):
    """The child's reply, or ("crashed", exit code) once it has exited without one, or ("timeout", None).

    The child's exit is read from waitpid, not from pipe ends: a sibling forked meanwhile by another
    thread may hold a copy of this child's pipe, so an end-of-file can come late."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if reader.poll(min(_POLL_S, max(left, 0.0))):
            try:
                return reader.recv()
            except (EOFError, OSError):
                break
        if child.exitcode is not None and not reader.poll(0):
            break
        if left <= 0:
            return "timeout", None
    settle = time.monotonic() + 1.0
    while child.exitcode is None and time.monotonic() < settle:  # EOF can precede the exit status
        time.sleep(0.01)
    return "crashed", f"exit code {child.exitcode}"


_POLL_S = 0.05


def _child_main(tool: Tool, query: str, writer) -> None:
    os.setsid()  # its own process group: killing it kills whatever the tool started
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    try:
        value = tool.fn(query)
        size = len(value) if isinstance(value, (str, bytes)) else 0
        if isinstance(value, str) and size > tool.max_output_chars:
            value = value[: tool.max_output_chars]  # the pipe carries the kept part and the true size
        elif isinstance(value, bytes) and size > 4 * tool.max_output_chars:
            value = value[: 4 * tool.max_output_chars]
        writer.send(("ok", (value, size)))
    except BaseException as err:  # noqa: BLE001
        writer.send(("raised", _last_line(err)))
    finally:
        writer.close()
        os._exit(0)


@dataclass(frozen=True)
class _Sized:
    """A child's return value cut at the cap, with its size before the cut."""

    value: object
    size: int


def _kill_group(child) -> None:
    if child.pid is None:
        return
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    deadline = time.monotonic() + 1.0
    while child.exitcode is None and time.monotonic() < deadline:  # reap it (waitpid, not pipe ends)
        time.sleep(0.01)


def _last_line(err: BaseException) -> str:
    lines = traceback.format_exception_only(type(err), err)
    return lines[-1].strip() if lines else type(err).__name__
