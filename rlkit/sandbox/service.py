"""Sandbox over HTTP, so reward workers on other nodes can share sandbox hosts.

    POST /run        a RunJob as JSON         -> ExecResult
    POST /run_tests  a TestJob as JSON        -> TestReport
    POST /run_many   {"jobs": [...]}          -> {"results": [{"type": "exec"|"report", ...}]}
    GET  /health                              -> {"ok": true, "sandbox": {...}}

All jobs of all requests share one pool of ``max_workers`` threads, so the
host never runs more programs at once. With a token, every request must send
``Authorization: Bearer <token>``. Binds to loopback unless told otherwise.
"""

from __future__ import annotations

import hmac
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from rlkit.sandbox.jobs import RunJob, TestJob, as_job
from rlkit.sandbox.results import ExecResult, TestReport
from rlkit.sandbox.sandbox import Sandbox

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 64 << 20


def encode_result(result: ExecResult | TestReport) -> dict[str, Any]:
    """A result as a tagged dict (the wire format of ``/run_many``)."""
    kind = "exec" if isinstance(result, ExecResult) else "report"
    return {"type": kind, **result.to_dict()}


def decode_result(data: dict[str, Any]) -> ExecResult | TestReport:
    fields = dict(data)
    kind = fields.pop("type", None)
    if kind == "exec":
        return ExecResult.from_dict(fields)
    if kind == "report":
        return TestReport.from_dict(fields)
    raise ValueError(f"result type must be 'exec' or 'report', got {kind!r}")


class SandboxServer(ThreadingHTTPServer):
    """An HTTP server running jobs on one `Sandbox` with bounded parallelism."""

    daemon_threads = True

    def __init__(self, *, sandbox: Sandbox, host: str = "127.0.0.1", port: int = 0, max_workers: int | None = None,
                 token: str | None = None):  # fmt: skip
        super().__init__((host, port), _Handler)
        self.sandbox = sandbox
        self.token = token
        self.pool = ThreadPoolExecutor(max_workers=max_workers or sandbox.max_workers, thread_name_prefix="rlkit-serve")

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def server_close(self) -> None:
        super().server_close()
        self.pool.shutdown(wait=True, cancel_futures=True)


class _Handler(BaseHTTPRequestHandler):
    server: SandboxServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        if not self._authorized():
            return
        if self.path == "/health":
            self._send(HTTPStatus.OK, {"ok": True, "sandbox": self.server.sandbox.describe()})
        else:
            self._send(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint {self.path!r}"})

    def do_POST(self) -> None:  # noqa: N802
        if not self._authorized():
            return
        body = self._body()
        if body is None:
            return
        try:
            if self.path == "/run_many":
                jobs = body.get("jobs")
                if not isinstance(jobs, list):
                    raise ValueError("'jobs' must be a list")
                results = list(self.server.pool.map(self.server.sandbox.run_job, jobs))
                self._send(HTTPStatus.OK, {"results": [encode_result(r) for r in results]})
            elif self.path in ("/run", "/run_tests"):
                job = as_job({**body, "kind": "run" if self.path == "/run" else "tests"})
                if not isinstance(job, (RunJob, TestJob)):
                    raise ValueError("bad job")
                result = self.server.pool.submit(self.server.sandbox.run_job, job).result()
                self._send(HTTPStatus.OK, result.to_dict())
            else:
                self._send(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint {self.path!r}"})
        except (TypeError, ValueError, KeyError) as e:
            self._send(HTTPStatus.BAD_REQUEST, {"error": f"invalid request: {e}"})
        except RuntimeError as e:  # the pool is shutting down
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, {"error": str(e)})

    def _authorized(self) -> bool:
        token = self.server.token
        if token is None:
            return True
        given = self.headers.get("Authorization", "")
        if hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return True
        self._send(HTTPStatus.UNAUTHORIZED, {"error": "missing or wrong bearer token"})
        return False

    def _body(self) -> dict[str, Any] | None:
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY_BYTES:
            self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": f"body must be 0..{MAX_BODY_BYTES} bytes"})
            return None
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError as e:
            self._send(HTTPStatus.BAD_REQUEST, {"error": f"body is not JSON: {e}"})
            return None
        if not isinstance(body, dict):
            self._send(HTTPStatus.BAD_REQUEST, {"error": "body must be a JSON object"})
            return None
        return body

    def _send(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server signature
        log.debug("%s - %s", self.address_string(), format % args)


def serve(*, sandbox: Sandbox, host: str = "127.0.0.1", port: int = 8790, max_workers: int | None = None,
          token: str | None = None) -> None:  # fmt: skip
    """Serve until interrupted."""
    server = SandboxServer(sandbox=sandbox, host=host, port=port, max_workers=max_workers, token=token)
    log.info("rlkit sandbox serving on %s (%s)", server.url, sandbox.describe())
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
