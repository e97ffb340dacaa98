"""`Sandbox`: run untrusted programs and test suites in isolation.

from rlkit.sandbox import Sandbox, Limits
sb = Sandbox()
sb.run("print(input())", stdin="hi")                   # ExecResult
sb.run_tests(code, ["assert add(1, 2) == 3"])          # TestReport
sb.run_many([TestJob(code, tests), ...], max_workers=4)
"""

from __future__ import annotations

import json
import os
import secrets
import warnings
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Mapping, Sequence

from rlkit.sandbox.cgroups import Cgroups, detect_cgroups
from rlkit.sandbox.fork_server import ForkServer, ForkServerPool, ForkServerUnavailable
from rlkit.sandbox.isolation import Isolation, IsolationMode, RunSpec
from rlkit.sandbox.jobs import Job, RunJob, TestJob, TestMode, as_job
from rlkit.sandbox.languages import CppToolchain, PythonRuntime, canonical_language
from rlkit.sandbox.limits import COMPILE_LIMITS, Limits
from rlkit.sandbox.process import RawOutcome, Started, execute, failed_start, start
from rlkit.sandbox.results import ExecResult, TestReport, TestResult
from rlkit.sandbox.status import to_exec_result
from rlkit.sandbox.testing import (
    assert_results,
    check_assert_tests,
    normalize_stdio_case,
    parse_channel,
    stdio_difference,
    stdio_matches,
)
from rlkit.sandbox.warm import WarmPool

_CHANNEL_CAP = 16 << 20


class Sandbox:
    """Runs untrusted Python and C++ under `Limits` with bubblewrap isolation.

    ``isolation='none'`` runs programs as this user with only rlimits and
    timeouts, after a warning; it is for machines without bubblewrap and
    code you would run anyway. ``python`` is the interpreter programs use
    (default ``/usr/bin/python3``); ``ro_binds`` are extra host paths (or
    ``(host, sandbox)`` pairs) programs may read, e.g. a data directory.
    Programs run as an unprivileged uid, so those paths must be world-readable.

    ``fork_server`` (default: on where the host runs as root with bubblewrap)
    runs programs in started sandboxes that fork each one as its own fresh
    unprivileged uid and clean up after it (`rlkit.sandbox.fork_server`):
    no sandbox or interpreter start-up per program. If no server can start,
    the default warns and falls back to one sandbox per program; ``True``
    makes such runs ``sandbox_error``s instead. Otherwise every program
    gets a sandbox of its own; then, with ``prewarm`` (the default), each
    assert-mode run starts the sandbox for the next one while it runs.
    Either way at most one idle sandbox is kept per concurrent caller;
    `close` stops them, and they die with this process anyway.
    """

    def __init__(
        self,
        *,
        limits: Limits | None = None,
        isolation: IsolationMode = "bwrap",
        python: str | None = None,
        python_flags: Sequence[str] = ("-I",),
        cxx: str = "g++",
        cxx_flags: Sequence[str] = ("-std=c++17", "-O2", "-pipe"),
        compile_limits: Limits = COMPILE_LIMITS,
        ro_binds: Sequence[str | tuple[str, str]] = (),
        max_workers: int | None = None,
        use_cgroups: bool = True,
        prewarm: bool = True,
        fork_server: bool | None = None,
        bwrap: str | None = None,
    ):
        self.limits = limits or Limits()
        if not isinstance(self.limits, Limits):
            raise TypeError(f"limits must be a Limits, got {type(self.limits).__name__}")
        self.isolation = Isolation(mode=isolation, bwrap=bwrap)
        self.cgroups: Cgroups = detect_cgroups() if use_cgroups else Cgroups(kind="none", bases={}, reason="disabled")
        self.python = PythonRuntime.find(executable=python, flags=python_flags)
        self.cpp = CppToolchain(compiler=cxx, flags=tuple(cxx_flags))
        self.compile_limits = compile_limits
        self.ro_binds = [(b, b) if isinstance(b, str) else (b[0], b[1]) for b in ro_binds]
        for src, _ in self.ro_binds:
            if not os.path.exists(src):
                raise FileNotFoundError(f"ro_binds path {src!r} does not exist")
        self.max_workers = max_workers or os.cpu_count() or 1
        self.prewarm = prewarm
        self._warm = WarmPool()
        weakref.finalize(self, self._warm.close)
        can_fork_serve = self.isolation.mode == "bwrap" and self.isolation.privileged
        if fork_server and not can_fork_serve:
            raise ValueError(
                "fork_server=True needs isolation='bwrap' on a host running as root (the server drops each "
                "program to its own uid); pass fork_server=None to use it only where it can run"
            )
        self._servers: ForkServerPool | None = None
        self._fork_server_required = bool(fork_server)
        if can_fork_serve and fork_server is not False:
            self._servers = ForkServerPool(_fork_server_factory(self.isolation, self.cgroups, self.python, self.ro_binds))
            weakref.finalize(self, self._servers.close)

    def describe(self) -> dict[str, Any]:
        """How programs are isolated here (for logs and the service's /health)."""
        return {
            "isolation": self.isolation.mode,
            "privileged_host": self.isolation.privileged,
            "seccomp": self.isolation.seccomp_enabled,
            "cgroups": self.cgroups.kind,
            "cgroups_reason": self.cgroups.reason,
            "fork_server": self._servers is not None,
            "python": self.python.executable,
            "limits": self.limits.to_dict(),
        }

    # ------------------------------------------------------------------ run

    def run(self, code: str, *, language: str = "python", stdin: str = "", limits: Limits | None = None) -> ExecResult:
        """Run ``code`` once with ``stdin``; C++ is compiled first (status ``compile_error`` if that fails)."""
        limits = self._limits(limits)
        lang = canonical_language(language)
        _check_text("code", code)
        _check_text("stdin", stdin)
        if lang == "cpp":
            binary, compiled = self._compile(code)
            if binary is None:
                return compiled
            return self._execute(self.cpp.binary_spec(binary, limits), stdin=stdin)
        return self._execute(self.python.script_spec(code, limits), stdin=stdin)

    # ------------------------------------------------------------------ tests

    def run_tests(
        self,
        code: str,
        tests: Sequence[Any],
        *,
        language: str = "python",
        mode: TestMode = "assert",
        limits: Limits | None = None,
        stop_on_first_failure: bool = False,
    ) -> TestReport:
        """Run a test suite against ``code``.

        ``mode='assert'`` (Python): ``tests`` are Python snippets (asserts,
        ``check(fn)`` calls) run by a trusted evaluator against the program's
        names, each in a fresh namespace. ``mode='stdio'``: ``tests`` are
        ``{"input": str, "output": str}`` cases, one run each, compared on the host.
        """
        limits = self._limits(limits)
        lang = canonical_language(language)
        _check_text("code", code)
        if isinstance(tests, (str, bytes)) or not isinstance(tests, Sequence):
            raise TypeError(f"tests must be a list, got {type(tests).__name__}")
        if mode == "assert":
            if lang != "python":
                raise ValueError(f"mode='assert' runs Python snippets and needs language='python', got {language!r}")
            return self._run_assert(code, check_assert_tests(tests), limits, stop_on_first_failure)
        if mode == "stdio":
            cases = [normalize_stdio_case(c, i) for i, c in enumerate(tests)]
            return self._run_stdio(code, lang, cases, limits, stop_on_first_failure)
        raise ValueError(f"mode must be 'assert' or 'stdio', got {mode!r}")

    def run_many(
        self, jobs: Sequence[Job | Mapping[str, Any]], *, max_workers: int | None = None
    ) -> list[ExecResult | TestReport]:
        """Run ``jobs`` with at most ``max_workers`` at once; results in job order.

        A job whose arguments are invalid yields a ``sandbox_error`` result
        naming the problem instead of failing the whole batch.
        """
        jobs = list(jobs)
        workers = max(1, min(max_workers or self.max_workers, len(jobs) or 1))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rlkit-sandbox") as pool:
            return list(pool.map(self.run_job, jobs))

    def run_job(self, job: Job | Mapping[str, Any]) -> ExecResult | TestReport:
        """One job of `run_many`."""
        try:
            job = as_job(job)
            if isinstance(job, RunJob):
                return self.run(job.code, language=job.language, stdin=job.stdin, limits=job.limits)
            return self.run_tests(
                job.code,
                job.tests,
                language=job.language,
                mode=job.mode,
                limits=job.limits,
                stop_on_first_failure=job.stop_on_first_failure,
            )
        except (TypeError, ValueError) as e:
            error = _error_result(f"invalid job: {e}")
            if isinstance(job, TestJob) or (isinstance(job, Mapping) and "tests" in job):
                return TestReport(passed=0, total=0, results=[], status="sandbox_error", runs=[error])
            return error

    # ------------------------------------------------------------------ internals

    def _limits(self, limits: Limits | None) -> Limits:
        if limits is None:
            return self.limits
        if not isinstance(limits, Limits):
            raise TypeError(f"limits must be a Limits, got {type(limits).__name__}")
        return limits

    def _execute(self, spec: RunSpec, *, stdin: str = "") -> ExecResult:
        return to_exec_result(self._raw(spec, stdin=stdin.encode("utf-8", "surrogatepass")))

    def _raw(self, spec: RunSpec, **kwargs: Any) -> RawOutcome:
        """Run ``spec`` in a fork server where there is one, else in a sandbox of its own."""
        servers = self._servers
        if servers is not None:
            try:
                return servers.run(spec, **kwargs)  # the servers bind self.ro_binds themselves
            except ForkServerUnavailable as e:
                if self._fork_server_required:
                    return failed_start(str(e), 0.0)
                warnings.warn(
                    f"rlkit.sandbox: {e}; from now on each program runs in a sandbox of its own", RuntimeWarning,
                    stacklevel=3,
                )  # fmt: skip
                self._servers = None
                servers.close()
        spec.ro_binds = [*spec.ro_binds, *self.ro_binds]
        return execute(isolation=self.isolation, cgroups=self.cgroups, spec=spec, **kwargs)

    def _compile(self, code: str) -> tuple[bytes | None, ExecResult]:
        limits = self.compile_limits
        raw = self._raw(self.cpp.compile_spec(code, limits), stdout_cap=limits.file_size_mb << 20)
        result = to_exec_result(raw)
        if result.status == "ok" and raw.stdout:
            return raw.stdout, result
        why = {
            "timeout": f"compilation exceeded {limits.time_s:g} s",
            "memory_limit": f"compilation exceeded {limits.memory_mb} MB",
            "output_limit": "the compiler's output exceeded its limit",
        }.get(result.status, "")
        stderr = f"{why}\n{result.stderr}" if why else result.stderr
        status = "sandbox_error" if result.status == "sandbox_error" else "compile_error"
        return None, ExecResult(**{**result.to_dict(), "status": status, "stdout": "", "stderr": stderr})

    def _run_assert(self, code: str, tests: list[str], limits: Limits, stop: bool) -> TestReport:
        nonce = secrets.token_hex(16)
        job = {"nonce": nonce, "tests": tests, "stop_on_first_failure": stop}
        inputs = [code.encode("utf-8", "surrogatepass"), json.dumps(job).encode()]
        if self._servers is not None:
            raw = self._raw(self.python.harness_spec(limits=limits), inputs=inputs, channel_cap=_CHANNEL_CAP)
        else:
            raw = self._run_prewarmed_harness(limits, inputs, nonce)
        run = to_exec_result(raw)
        events = parse_channel(raw.channel, nonce=nonce, total=len(tests))
        return _report(assert_results(events, run, total=len(tests)), [run])

    def _run_prewarmed_harness(self, limits: Limits, inputs: list[bytes], nonce: str) -> RawOutcome:
        """The harness in a sandbox of its own: a waiting one if there is one, then warm up the next."""
        warm = self._warm.take(limits)
        started = warm or self._start_harness(limits)
        if self.prewarm:
            self._warm.add(limits, self._start_harness)  # warms up while this run goes on
        raw = started if isinstance(started, RawOutcome) else started.finish(inputs=inputs)
        if warm is not None and not parse_channel(raw.channel, nonce=nonce, total=0).ready:
            started = self._start_harness(limits)  # the waiting harness died before its input came
            raw = started if isinstance(started, RawOutcome) else started.finish(inputs=inputs)
        return raw

    def _start_harness(self, limits: Limits) -> Started | RawOutcome:
        spec = self.python.harness_spec(limits=limits)
        spec.ro_binds = [*spec.ro_binds, *self.ro_binds]
        return start(isolation=self.isolation, cgroups=self.cgroups, spec=spec, n_inputs=2, channel_cap=_CHANNEL_CAP)

    def close(self) -> None:
        """Stop the sandboxes kept for the next runs (fork servers, warm harnesses)."""
        self._warm.close()
        if self._servers is not None:
            self._servers.close()

    def _run_stdio(self, code: str, lang: str, cases: list[tuple[str, str]], limits: Limits, stop: bool) -> TestReport:
        runs: list[ExecResult] = []
        if lang == "cpp":
            binary, compiled = self._compile(code)
            runs.append(compiled)
            if binary is None:
                status = compiled.status
                message = compiled.stderr.strip()[-1000:]
                results = [TestResult(index=i, passed=False, status=status, message=message) for i in range(len(cases))]
                return TestReport(passed=0, total=len(cases), results=results, status=status, runs=runs)
        results: list[TestResult] = []
        for i, (stdin, expected) in enumerate(cases):
            if stop and results and not results[-1].passed:
                results.append(
                    TestResult(index=i, passed=False, status="not_run", message="not run: stopped after a failure")
                )
                continue
            spec = self.cpp.binary_spec(binary, limits) if lang == "cpp" else self.python.script_spec(code, limits)
            run = self._execute(spec, stdin=stdin)
            runs.append(run)
            results.append(_stdio_result(i, run, expected))
        return _report(results, runs)


def _fork_server_factory(
    isolation: Isolation, cgroups: Cgroups, python: PythonRuntime, ro_binds: list[tuple[str, str]]
) -> Callable[[int, bool], ForkServer]:
    """Starts this Sandbox's fork servers; holds no reference to the Sandbox, so it can be collected."""

    def start(disk_mb: int, network: bool) -> ForkServer:
        return ForkServer(
            isolation=isolation, cgroups=cgroups, python=python, ro_binds=ro_binds, disk_mb=disk_mb, network=network
        )

    return start


def _stdio_result(index: int, run: ExecResult, expected: str) -> TestResult:
    if run.status != "ok":
        tail = run.stderr.strip().splitlines()[-1:] if run.stderr.strip() else []
        message = f"{run.status} (exit {run.returncode})" + (f": {tail[0][:300]}" if tail else "")
        return TestResult(index=index, passed=False, status=run.status, message=message, time_s=run.time_s)
    if stdio_matches(run.stdout, expected):
        return TestResult(index=index, passed=True, status="passed", time_s=run.time_s)
    return TestResult(
        index=index, passed=False, status="failed", message=stdio_difference(run.stdout, expected), time_s=run.time_s
    )


def _report(results: list[TestResult], runs: list[ExecResult]) -> TestReport:
    status = next((r.status for r in runs if r.status != "ok"), "ok")
    return TestReport(
        passed=sum(r.passed for r in results), total=len(results), results=results, status=status, runs=runs
    )


def _error_result(message: str) -> ExecResult:
    return ExecResult(status="sandbox_error", returncode=None, stdout="", stderr=message, time_s=0.0)


def _check_text(name: str, value: Any) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
