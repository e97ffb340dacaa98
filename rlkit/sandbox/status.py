"""Turn what the host observed about a run into an `ExecResult` status."""

from __future__ import annotations

import signal

from rlkit.sandbox.process import RawOutcome
from rlkit.sandbox.results import ExecResult, Status

# Messages from the sandbox's own setup (never from the program, which starts after them).
_SETUP_PREFIXES = (b"bwrap: ", b"setpriv: ", b"rlkit-limits: ", b"rlkit-zygote: ")
_MEMORY_MARKERS = (b"MemoryError", b"std::bad_alloc", b"Cannot allocate memory")


def classify(outcome: RawOutcome) -> Status:
    """One status, by precedence: setup failure, output cap, time, memory, exit code."""
    rc = outcome.returncode
    if outcome.start_error is not None or rc is None:
        return "sandbox_error"
    if rc != 0 and outcome.stderr.startswith(_SETUP_PREFIXES):
        return "sandbox_error"
    if outcome.stdout_truncated or outcome.stderr_truncated:
        return "output_limit"
    if outcome.timed_out or rc == -signal.SIGXCPU:
        return "timeout"
    if rc != 0 and (outcome.oom_kills > 0 or any(m in outcome.stderr[-4096:] for m in _MEMORY_MARKERS)):
        return "memory_limit"
    if rc != 0:
        return "runtime_error"
    return "ok"


def to_exec_result(outcome: RawOutcome, *, status: Status | None = None) -> ExecResult:
    """An `ExecResult` for ``outcome`` (``status`` overrides the classification)."""
    return ExecResult(
        status=status or classify(outcome),
        returncode=outcome.returncode,
        stdout=outcome.stdout.decode("utf-8", "replace"),
        stderr=outcome.stderr.decode("utf-8", "replace"),
        time_s=round(outcome.wall_s, 6),
        cpu_s=round(outcome.cpu_s, 6),
        memory_mb=round(outcome.peak_memory_bytes / (1 << 20), 3),
        stdout_truncated=outcome.stdout_truncated,
        stderr_truncated=outcome.stderr_truncated,
    )
