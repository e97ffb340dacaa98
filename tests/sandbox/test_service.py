"""Service mode: the HTTP server and `SandboxClient` give the same result objects as `Sandbox`."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from conftest import requires_bwrap

from rlkit.sandbox import ExecResult, Limits, RunJob, SandboxClient, SandboxServiceError, TestJob, TestReport
from rlkit.sandbox.service import SandboxServer

pytestmark = requires_bwrap
TOKEN = "test-token-123"


@pytest.fixture(scope="module")
def server(sandbox):
    srv = SandboxServer(sandbox=sandbox, host="127.0.0.1", port=0, max_workers=2, token=TOKEN)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture()
def client(server) -> SandboxClient:
    return SandboxClient(server.url, token=TOKEN, timeout_s=30, retries=1, backoff_s=0.01)


def _without_timing(result):
    data = result.to_dict()
    for run in [data, *data.get("runs", [])]:
        for key in ("time_s", "cpu_s", "memory_mb"):
            run.pop(key, None)
    for r in data.get("results", []):
        r.pop("time_s")
    return data


def test_same_objects_through_both_paths(sandbox, client):
    code = "def f(x):\n    return x * 2\nprint('hi')"
    tests = ["assert f(2) == 4", "assert f(3) == 7"]
    local, remote = sandbox.run_tests(code, tests), client.run_tests(code, tests)
    assert isinstance(remote, TestReport)
    assert _without_timing(remote) == _without_timing(local)
    local_run, remote_run = sandbox.run("print(input())", stdin="x"), client.run("print(input())", stdin="x")
    assert isinstance(remote_run, ExecResult) and _without_timing(remote_run) == _without_timing(local_run)


def test_run_many_over_http(client):
    jobs = [
        RunJob(code="print(1)"),
        TestJob(code="x = 1", tests=["assert x == 1"]),
        RunJob(code="while True: pass", limits=Limits(time_s=0.5)),
        {"code": "y", "tests": 7},
    ]
    results = client.run_many(jobs)
    assert [type(r).__name__ for r in results] == ["ExecResult", "TestReport", "ExecResult", "TestReport"]
    assert [r.status for r in results] == ["ok", "ok", "timeout", "sandbox_error"]
    assert "tests must be a list" in results[3].runs[0].stderr


def test_health_and_authentication(server, client):
    assert client.health()["ok"] is True
    with pytest.raises(SandboxServiceError, match="401: missing or wrong bearer token"):
        SandboxClient(server.url, token="wrong", retries=0).run("print(1)")


def test_bad_requests_are_rejected_without_retry(server, client):
    start = time.monotonic()
    with pytest.raises(SandboxServiceError, match="400: invalid request"):
        client._request("POST", "/run_many", {"jobs": "not a list"})
    with pytest.raises(SandboxServiceError, match="404"):
        client._request("POST", "/compile", {})
    assert time.monotonic() - start < 1.0


def test_client_retries_then_gives_up_on_a_dead_server():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    client = SandboxClient(f"http://127.0.0.1:{port}", retries=2, backoff_s=0.05, timeout_s=1)
    start = time.monotonic()
    with pytest.raises(SandboxServiceError, match="failed after 3 attempt"):
        client.run("print(1)")
    assert 0.15 <= time.monotonic() - start < 3.0  # backoff 0.05 + 0.1


def test_client_retries_until_the_server_answers(sandbox):
    """A server that comes up during the client's retries still gets the request."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    holder = {}

    def start_late():
        time.sleep(0.3)
        holder["srv"] = SandboxServer(sandbox=sandbox, port=port, max_workers=1)
        holder["srv"].serve_forever()

    threading.Thread(target=start_late, daemon=True).start()
    try:
        result = SandboxClient(f"http://127.0.0.1:{port}", retries=5, backoff_s=0.2, timeout_s=10).run("print(5)")
        assert result.stdout == "5\n"
    finally:
        for _ in range(50):
            if "srv" in holder:
                break
            time.sleep(0.05)
        holder["srv"].shutdown()
        holder["srv"].server_close()


def test_client_validates_its_arguments():
    with pytest.raises(ValueError, match="url must start with http"):
        SandboxClient("localhost:8790")
    with pytest.raises(ValueError, match="timeout_s must be positive"):
        SandboxClient("http://127.0.0.1:1", timeout_s=0)
