"""Tools never hang or crash a rollout: each failure mode is an error observation within timeout + 1 s."""

from __future__ import annotations

import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from rlkit.envs import call_tool, register_tool, unregister_tool

PID_FILE = Path(f"/tmp/rlkit-test-tool-{os.getpid()}.pid")


def _sleeper(query: str) -> str:
    time.sleep(30)
    return "never"


def _spawner(query: str) -> str:
    child = subprocess.Popen(["sleep", "300"])
    PID_FILE.write_text(str(child.pid))
    time.sleep(30)
    return "never"


def _crash(query: str) -> str:
    raise ZeroDivisionError("division by zero in the tool")


def _die(query: str) -> str:
    os._exit(7)


def _flood(query: str) -> str:
    return "x" * 5_000_000


def _not_utf8(query: str) -> bytes:
    return b"ok \xff\xfe"


def _echo(query: str) -> str:
    return query.upper()


TOOLS = {
    "t_sleep": _sleeper, "t_spawn": _spawner, "t_crash": _crash, "t_die": _die,
    "t_flood": _flood, "t_bytes": _not_utf8, "t_echo": _echo,
}  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def _tools():
    for name, fn in TOOLS.items():
        register_tool(name, timeout_s=1.0, max_output_chars=100)(fn)
    yield
    for name in TOOLS:
        unregister_tool(name)
    PID_FILE.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); it is not running
    return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"


def test_every_failure_mode_is_an_observation_within_timeout_plus_one_second():
    names = list(TOOLS)
    started = time.perf_counter()
    with ThreadPoolExecutor(len(names)) as pool:  # one batch, tools in parallel
        results = dict(zip(names, pool.map(lambda n: call_tool(n, "abc"), names)))
    wall = time.perf_counter() - started
    assert wall < 2.0  # timeout 1 s + 1 s, all calls together
    for r in results.values():
        assert r.time_s < 2.0
    assert (results["t_sleep"].error, results["t_sleep"].text) == ("timeout", "error: tool t_sleep timed out after 1 s")
    assert results["t_spawn"].error == "timeout"
    assert (results["t_crash"].error, results["t_crash"].text) == (
        "exception", "error: tool t_crash failed: ZeroDivisionError: division by zero in the tool",
    )  # fmt: skip
    assert (results["t_die"].error, results["t_die"].text) == ("crash", "error: tool t_die crashed (exit code 7)")
    flood = results["t_flood"]
    assert flood.error == "output_cap"
    assert flood.text == "x" * 100 + "\n[error: output truncated: 5000000 characters or bytes, cap 100]"
    assert results["t_bytes"].error == "not_utf8"
    assert results["t_bytes"].text == "error: tool t_bytes returned bytes that are not UTF-8 (invalid start byte at byte 3)"
    assert (results["t_echo"].error, results["t_echo"].text) == (None, "ABC")


def test_nothing_a_timed_out_tool_started_is_left_running():
    result = call_tool("t_spawn", "")
    assert result.error == "timeout"
    pid = int(PID_FILE.read_text())
    deadline = time.time() + 2
    while _alive(pid) and time.time() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)


def test_a_taken_name_is_rejected_and_unknown_names_listed():
    with pytest.raises(ValueError, match="tool 't_echo' is already registered by"):
        register_tool("t_echo")(lambda q: q)
    with pytest.raises(KeyError, match="unknown tool 'nope'; registered tools: .*python"):
        call_tool("nope", "")
