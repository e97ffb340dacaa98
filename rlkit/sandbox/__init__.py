"""Isolated execution of untrusted code: `Sandbox`, `Limits` and their results.

    from rlkit.sandbox import Sandbox, Limits
    sb = Sandbox(limits=Limits(time_s=5))
    sb.run("print(1 + 1)").stdout                       # '2\\n'
    sb.run_tests(code, ["assert f(2) == 4"]).passed      # 1

Programs run under bubblewrap as an unprivileged uid with no capabilities,
no network, a private size-bounded work dir and per-run cgroup limits; see
docs/sandbox.md. `IsolatedProcess` starts a long-lived program (a Lean REPL,
a Python tool) under the same isolation. `SandboxClient` talks to a sandbox
served over HTTP (``rlkit sandbox serve``) and returns the same objects.
"""

from rlkit.sandbox.client import SandboxClient, SandboxServiceError
from rlkit.sandbox.isolated_process import IsolatedProcess
from rlkit.sandbox.isolation import NO_ISOLATION_WARNING, SandboxUnavailableError
from rlkit.sandbox.jobs import RunJob, TestJob
from rlkit.sandbox.limits import COMPILE_LIMITS, Limits
from rlkit.sandbox.results import ExecResult, TestReport, TestResult
from rlkit.sandbox.sandbox import Sandbox

__all__ = [
    "COMPILE_LIMITS",
    "NO_ISOLATION_WARNING",
    "ExecResult",
    "IsolatedProcess",
    "Limits",
    "RunJob",
    "Sandbox",
    "SandboxClient",
    "SandboxServiceError",
    "SandboxUnavailableError",
    "TestJob",
    "TestReport",
    "TestResult",
]
