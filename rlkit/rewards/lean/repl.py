"""One Lean REPL process speaking the leanprover-community/repl JSON protocol.

Requests are one-line JSON objects followed by a blank line; replies are JSON
(pretty-printed over several lines) followed by a blank line. The session loads
the header (imports) once, then sends every command in the header's ``env``.
A reply that does not come within the timeout, a process that dies, or one
that goes over its memory cap is closed; the next command starts a fresh
process (and reloads the header). After ``max_uses`` commands the process is
recycled, since the REPL keeps every environment it has created.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from rlkit.rewards.lean.process import LaunchSpec, MemoryLimitExceeded, ReplProcess

_DELIMITER = b"\n\n"


class LeanStartError(RuntimeError):
    """The REPL could not be started or rejected the header."""


@dataclass(frozen=True)
class Reply:
    """A parsed reply, or why there is none (``failure``: timeout, crash, memory, bad_reply)."""

    response: dict[str, Any] | None
    failure: Literal["timeout", "crash", "memory", "bad_reply"] | None = None
    detail: str = ""
    time_s: float = 0.0


class ReplSession:
    """A restartable REPL process with the header environment loaded."""

    def __init__(
        self,
        *,
        launch: Callable[[LaunchSpec], ReplProcess],
        spec: LaunchSpec,
        header: str = "",
        timeout_s: float = 60.0,
        startup_timeout_s: float = 600.0,
        max_uses: int = 200,
    ) -> None:
        self._launch = launch
        self.spec = spec
        self.header = header
        self.timeout_s = timeout_s
        self.startup_timeout_s = startup_timeout_s
        self.max_uses = max_uses
        self.starts = 0
        self._proc: ReplProcess | None = None
        self._env: int | None = None
        self._uses = 0

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.alive

    def start(self) -> None:
        """Start the process and load the header (no-op when already running)."""
        if self.running:
            return
        self.close()
        try:
            self._proc = self._launch(self.spec)
        except OSError as e:
            raise LeanStartError(f"cannot start {list(self.spec.argv)}: {e}") from e
        self.starts += 1
        self._uses = 0
        self._env = None
        if not self.header.strip():
            return
        reply = self._exchange({"cmd": self.header}, self.startup_timeout_s)
        problem = _header_problem(reply)
        if problem is not None:
            self.close()
            raise LeanStartError(f"the REPL did not load the header: {problem}")
        self._env = reply.response.get("env") if reply.response else None

    def command(self, source: str) -> Reply:
        """Run Lean ``source`` in the header environment."""
        if self._uses >= self.max_uses:
            self.close()
        self.start()
        request: dict[str, Any] = {"cmd": source}
        if self._env is not None:
            request["env"] = self._env
        self._uses += 1
        return self._exchange(request, self.timeout_s)

    def send(self, request: dict[str, Any], *, timeout_s: float | None = None) -> Reply:
        """Send a raw protocol request (tactic mode, pickling...) to the running process."""
        self.start()
        return self._exchange(request, self.timeout_s if timeout_s is None else timeout_s)

    def close(self) -> None:
        if self._proc is not None:
            self._proc.close()
            self._proc = None

    def _exchange(self, request: dict[str, Any], timeout_s: float) -> Reply:
        assert self._proc is not None
        proc = self._proc
        started = time.monotonic()

        def failed(kind: Literal["timeout", "crash", "memory", "bad_reply"], detail: str) -> Reply:
            self.close()
            return Reply(None, kind, detail, time.monotonic() - started)

        try:
            proc.write(json.dumps(request, ensure_ascii=False).encode() + _DELIMITER)
            raw = proc.read_until(_DELIMITER, timeout_s=timeout_s)
        except TimeoutError:
            return failed("timeout", f"no reply from the Lean REPL within {timeout_s:g} s")
        except MemoryLimitExceeded as e:
            return failed("memory", str(e))
        except (OSError, ValueError) as e:  # broken pipe, output without a delimiter
            self.close()
            return failed("crash", f"the Lean REPL failed: {type(e).__name__}: {e}{_stderr_tail(proc)}")
        if not raw.endswith(_DELIMITER):  # end of output: the process exited
            self.close()
            return failed("crash", f"the Lean REPL exited without a reply{_exit_status(proc)}{_stderr_tail(proc)}")
        try:
            response = json.loads(raw)
        except ValueError:
            return failed("bad_reply", f"the Lean REPL replied with non-JSON text: {raw[:300]!r}")
        return Reply(response, None, "", time.monotonic() - started)


def _header_problem(reply: Reply) -> str | None:
    if reply.response is None:
        return f"{reply.failure}: {reply.detail}"
    if "message" in reply.response:
        return f"REPL error: {reply.response['message']}"
    errors = [m for m in reply.response.get("messages") or [] if m.get("severity") == "error"]
    if errors:
        return f"Lean error: {errors[0].get('data')}"
    if not isinstance(reply.response.get("env"), int):
        return f"the reply has no env: {str(reply.response)[:300]}"
    return None


def _exit_status(proc: ReplProcess) -> str:
    code = proc.close()
    if code is None:
        return ""
    return f" (exit code {code})" if code >= 0 else f" (killed by signal {-code})"


def _stderr_tail(proc: ReplProcess) -> str:
    text = proc.stderr_text().strip()
    return f"; stderr: {text[-500:]}" if text else ""
