"""`SandboxClient`: the `Sandbox` API over HTTP (``rlkit sandbox serve``).

    sb = SandboxClient("http://sandbox-host:8790", timeout_s=120, retries=3)
    sb.run_tests(code, tests).passed          # the same TestReport as Sandbox

Runs are pure computations, so a request that failed to connect, timed out
or got a 5xx answer is retried with exponential backoff (at most 10 s
between attempts); 4xx answers are the caller's mistake and raise at once.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any, Mapping, Sequence

from rlkit.sandbox.jobs import Job, RunJob, TestJob, TestMode
from rlkit.sandbox.limits import Limits
from rlkit.sandbox.results import ExecResult, TestReport
from rlkit.sandbox.service import decode_result

_MAX_BACKOFF_S = 10.0


class SandboxServiceError(RuntimeError):
    """The sandbox service could not be reached or rejected the request."""


class SandboxClient:
    """Talks to a sandbox service; methods mirror `Sandbox`."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 300.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        token: str | None = None,
    ):
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, got {url!r}")
        if timeout_s <= 0 or retries < 0 or backoff_s < 0:
            raise ValueError("timeout_s must be positive, retries and backoff_s non-negative")
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.token = token

    def health(self) -> dict[str, Any]:
        return self._request("GET", "/health", None)

    def run(self, code: str, *, language: str = "python", stdin: str = "", limits: Limits | None = None) -> ExecResult:
        job = RunJob(code=code, language=language, stdin=stdin, limits=limits)
        return ExecResult.from_dict(self._request("POST", "/run", _body(job)))

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
        job = TestJob(
            code=code, tests=list(tests), language=language, mode=mode, limits=limits,
            stop_on_first_failure=stop_on_first_failure,
        )  # fmt: skip
        return TestReport.from_dict(self._request("POST", "/run_tests", _body(job)))

    def run_many(
        self, jobs: Sequence[Job | Mapping[str, Any]], *, max_workers: int | None = None
    ) -> list[ExecResult | TestReport]:
        """Run ``jobs`` on the service (its own worker pool bounds parallelism; ``max_workers`` is ignored)."""
        payload = {"jobs": [_body(j) for j in jobs]}
        results = self._request("POST", "/run_many", payload)["results"]
        return [decode_result(r) for r in results]

    def run_job(self, job: Job | Mapping[str, Any]) -> ExecResult | TestReport:
        return self.run_many([job])[0]

    def _request(self, method: str, path: str, payload: dict[str, Any] | None) -> dict[str, Any]:
        data = None if payload is None else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(min(self.backoff_s * 2 ** (attempt - 1), _MAX_BACKOFF_S))
            request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    return json.loads(response.read())
            except urllib.error.HTTPError as e:
                detail = _error_detail(e)
                if e.code < 500:
                    raise SandboxServiceError(f"{method} {path} -> {e.code}: {detail}") from None
                last = SandboxServiceError(f"{method} {path} -> {e.code}: {detail}")
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
                last = e
        raise SandboxServiceError(
            f"{method} {self.url}{path} failed after {self.retries + 1} attempt(s): {last}"
        ) from last


def _body(job: Job | Mapping[str, Any]) -> dict[str, Any]:
    """The wire form of a job; mappings go as they are and the service validates them."""
    if isinstance(job, (RunJob, TestJob)):
        return job.to_dict()
    if not isinstance(job, Mapping):
        raise TypeError(f"a job must be a RunJob, TestJob or mapping, got {type(job).__name__}")
    body = dict(job)
    if isinstance(body.get("limits"), Limits):
        body["limits"] = body["limits"].to_dict()
    return body


def _error_detail(e: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(e.read()).get("error", ""))
    except (ValueError, OSError, AttributeError):
        return e.reason
