"""Test verdicts: reading the assert harness's result channel, comparing stdio output.

Assert mode trusts only lines on the result channel that carry the run's
nonce (see `rlkit.sandbox._harness`); a test counts as passed only when a
``result`` line says so. Stdio mode compares on the host, like a judge:
line by line, trailing whitespace and trailing blank lines ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from rlkit.sandbox.results import ExecResult, TestResult


@dataclass
class ChannelEvents:
    """What the evaluator reported for one run."""

    ready: bool = False
    loaded: bool = False
    load_error: str | None = None
    done: bool = False
    started: list[int] = field(default_factory=list)
    results: dict[int, TestResult] = field(default_factory=dict)


def parse_channel(data: bytes, *, nonce: str, total: int) -> ChannelEvents:
    """Events from the harness's channel; lines without the nonce or out of range are ignored."""
    events = ChannelEvents()
    for raw in data.splitlines():
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(line, dict) or line.get("nonce") != nonce:
            continue
        event = line.get("event")
        if event == "ready":
            events.ready = True
        elif event == "loaded":
            events.loaded = True
        elif event == "load_error":
            events.load_error = str(line.get("message", ""))[:2000]
        elif event == "done":
            events.done = True
        elif event in ("start", "result"):
            index = line.get("index")
            if type(index) is not int or not 0 <= index < total:
                continue
            if event == "start":
                events.started.append(index)
            elif index not in events.results and line.get("status") in ("passed", "failed", "error"):
                status = line["status"]
                time_s = line.get("time_s")
                events.results[index] = TestResult(
                    index=index,
                    passed=status == "passed",
                    status=status,
                    message=str(line.get("message", ""))[:2000],
                    time_s=float(time_s) if isinstance(time_s, (int, float)) else 0.0,
                )
    return events


def assert_results(events: ChannelEvents, run: ExecResult, *, total: int) -> list[TestResult]:
    """Per-test results of one assert-mode run, explaining every test without a verdict."""
    results = []
    in_flight = events.started[-1] if events.started else None
    for i in range(total):
        if i in events.results:
            results.append(events.results[i])
            continue
        if not events.ready:
            status, message = _abnormal(run, "the test harness did not start")
        elif events.load_error is not None:
            status, message = "error", f"the program failed to load: {events.load_error}"
        elif not events.loaded:
            status, message = _abnormal(run, "the program did not finish loading")
        elif i == in_flight:
            status, message = _abnormal(run, "the run ended during this test")
        elif in_flight is not None and in_flight < i and run.status == "ok":
            status, message = "not_run", f"not run: stopped after test {in_flight}"
        else:
            status, message = "not_run", f"not run: the run ended ({run.status}) before this test"
        results.append(TestResult(index=i, passed=False, status=status, message=message))
    return results


def _abnormal(run: ExecResult, what: str) -> tuple[str, str]:
    status = "runtime_error" if run.status == "ok" else run.status
    detail = run.stderr.strip().splitlines()[-1:] if run.stderr.strip() else []
    return status, f"{what} ({run.status}, exit {run.returncode}){': ' + detail[0][:300] if detail else ''}"


def normalize_stdio_case(case: Any, index: int) -> tuple[str, str]:
    """``(input, expected output)`` of one stdio case given as a mapping."""
    if not isinstance(case, Mapping) or "input" not in case or "output" not in case:
        raise ValueError(f"stdio test {index} must be a mapping with 'input' and 'output', got {case!r:.200}")
    if not isinstance(case["input"], str) or not isinstance(case["output"], str):
        raise ValueError(f"stdio test {index}: 'input' and 'output' must be strings")
    return case["input"], case["output"]


def stdio_matches(actual: str, expected: str) -> bool:
    """Judge comparison: equal line by line after trimming trailing whitespace and blank lines."""
    return _lines(actual) == _lines(expected)


def stdio_difference(actual: str, expected: str) -> str:
    """A one-line description of the first differing line."""
    got, want = _lines(actual), _lines(expected)
    for n, (g, w) in enumerate(zip(got, want, strict=False), start=1):
        if g != w:
            return f"line {n}: expected {w[:200]!r}, got {g[:200]!r}"
    return f"expected {len(want)} line(s), got {len(got)}"


def _lines(text: str) -> list[str]:
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def check_assert_tests(tests: Sequence[Any]) -> list[str]:
    """The snippets of an assert-mode suite, each a non-empty string."""
    out = []
    for i, t in enumerate(tests):
        if not isinstance(t, str):
            raise ValueError(f"assert test {i} must be a string of Python code, got {type(t).__name__}")
        out.append(t)
    return out
