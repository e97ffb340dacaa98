"""Pure logic of the sandbox: limits, results, status precedence, channel parsing, judge, seccomp, jobs."""

from __future__ import annotations

import json
import struct

import pytest

from rlkit.sandbox import ExecResult, Limits, RunJob, TestJob, TestReport, TestResult
from rlkit.sandbox.jobs import job_from_dict
from rlkit.sandbox.process import RawOutcome
from rlkit.sandbox.seccomp import build_filter
from rlkit.sandbox.status import classify
from rlkit.sandbox.testing import assert_results, parse_channel, stdio_difference, stdio_matches

# ---------------------------------------------------------------- Limits


def test_limits_defaults_and_cpu_seconds():
    limits = Limits(time_s=2.2)
    assert limits.cpu_s == 3 and limits.memory_mb == 1024
    assert Limits.from_dict(limits.to_dict()) == limits
    assert limits.with_(nproc=8).nproc == 8


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"time_s": 0}, "Limits.time_s must be positive and finite, got 0"),
        ({"time_s": float("inf")}, "Limits.time_s must be positive and finite"),
        ({"memory_mb": 1.5}, "Limits.memory_mb must be an int, got 1.5"),
        ({"nproc": True}, "Limits.nproc must be a number, got bool"),
        ({"nproc": 1}, "Limits.nproc must be at least 2"),
        ({"open_files": 4}, "Limits.open_files must be at least 8"),
    ],
)
def test_limits_reject_bad_values(kwargs, error):
    with pytest.raises((TypeError, ValueError), match=error.replace("(", r"\(").replace(")", r"\)")):
        Limits(**kwargs)


def test_limits_from_dict_names_unknown_fields():
    with pytest.raises(ValueError, match=r"unknown Limits field\(s\) \['wall'\]"):
        Limits.from_dict({"wall": 3})


# ---------------------------------------------------------------- results


def test_results_round_trip_through_dicts():
    run = ExecResult(status="timeout", returncode=-9, stdout="a", stderr="b", time_s=1.0, cpu_s=0.5, memory_mb=3.0)
    report = TestReport(
        passed=1,
        total=2,
        results=[
            TestResult(index=0, passed=True, status="passed"),
            TestResult(index=1, passed=False, status="timeout"),
        ],
        status="timeout",
        runs=[run],
    )
    assert ExecResult.from_dict(run.to_dict()) == run
    assert TestReport.from_dict(json.loads(json.dumps(report.to_dict()))) == report


def test_results_reject_inconsistent_values():
    with pytest.raises(ValueError, match="ExecResult.status must be one of"):
        ExecResult(status="crashed", returncode=1, stdout="", stderr="", time_s=0)
    with pytest.raises(ValueError, match="contradicts status 'failed'"):
        TestResult(index=0, passed=True, status="failed")
    with pytest.raises(ValueError, match="TestReport.passed does not match"):
        TestReport(passed=1, total=1, results=[TestResult(index=0, passed=False, status="failed")])


# ---------------------------------------------------------------- status precedence


def outcome(**changes) -> RawOutcome:
    base = dict(
        returncode=0, stdout=b"", stderr=b"", channel=b"", stdout_truncated=False, stderr_truncated=False,
        channel_exceeded=False, timed_out=False, wall_s=0.1, cpu_s=0.1, peak_memory_bytes=0, oom_kills=0,
    )  # fmt: skip
    return RawOutcome(**{**base, **changes})


@pytest.mark.parametrize(
    "changes, status",
    [
        ({}, "ok"),
        ({"returncode": 1}, "runtime_error"),
        ({"returncode": -11}, "runtime_error"),
        ({"returncode": -9, "timed_out": True}, "timeout"),
        ({"returncode": -24}, "timeout"),  # SIGXCPU: the CPU-time rlimit
        ({"returncode": -9, "oom_kills": 1}, "memory_limit"),
        ({"returncode": 1, "stderr": b"Traceback...\nMemoryError\n"}, "memory_limit"),
        ({"returncode": 0, "oom_kills": 2}, "ok"),  # a child was OOM-killed but the program coped
        ({"returncode": -9, "stdout_truncated": True, "timed_out": True}, "output_limit"),
        ({"returncode": 1, "stderr": b"bwrap: Can't mount tmpfs"}, "sandbox_error"),
        ({"returncode": None, "start_error": "no bwrap"}, "sandbox_error"),
    ],
)
def test_status_precedence(changes, status):
    assert classify(outcome(**changes)) == status


# ---------------------------------------------------------------- result channel


def _line(nonce: str, event: str, **fields) -> bytes:
    return json.dumps({"nonce": nonce, "event": event, **fields}).encode() + b"\n"


def test_channel_lines_without_the_nonce_are_ignored():
    data = (
        _line("n1", "ready")
        + _line("n1", "loaded")
        + _line("n1", "start", index=0)
        + _line("forged", "result", index=0, status="passed")
        + _line("n1", "result", index=0, status="failed", message="AssertionError")
        + _line("n1", "result", index=0, status="passed")  # a second verdict for the same test is ignored
        + b"garbage\n"
        + _line("n1", "result", index=7, status="passed")  # out of range
    )
    events = parse_channel(data, nonce="n1", total=2)
    assert events.ready and events.loaded
    assert events.results[0].status == "failed" and 1 not in events.results


def test_tests_without_a_verdict_get_the_runs_outcome():
    run = ExecResult(status="timeout", returncode=-9, stdout="", stderr="", time_s=1.0)
    data = _line("n", "ready") + _line("n", "loaded") + _line("n", "start", index=0)
    data += _line("n", "result", index=0, status="passed") + _line("n", "start", index=1)
    results = assert_results(parse_channel(data, nonce="n", total=3), run, total=3)
    assert [r.status for r in results] == ["passed", "timeout", "not_run"]
    harness_never_started = assert_results(parse_channel(b"", nonce="n", total=1), run, total=1)
    assert harness_never_started[0].status == "timeout" and not harness_never_started[0].passed


# ---------------------------------------------------------------- stdio judge


def test_stdio_judge():
    assert stdio_matches("1 2  \n3\n\n\n", "1 2\n3")
    assert stdio_matches("a\r\nb\r\n", "a\nb\n")
    assert not stdio_matches("1  2\n", "1 2\n")
    assert not stdio_matches("", "0")
    assert stdio_difference("1\n2\n", "1\n3\n") == "line 2: expected '3', got '2'"
    assert stdio_difference("1\n", "1\n2\n") == "expected 2 line(s), got 1"


# ---------------------------------------------------------------- seccomp


def _instructions(program: bytes) -> list[tuple[int, int, int, int]]:
    return [struct.unpack("<HBBI", program[i : i + 8]) for i in range(0, len(program), 8)]


def test_seccomp_filter_checks_the_arch_and_blocks_namespaces():
    prog = _instructions(build_filter("x86_64"))
    assert prog[0] == (0x20, 0, 0, 4) and prog[1] == (0x15, 1, 0, 0xC000003E)  # load arch, x86-64 only
    assert prog[-1] == (0x06, 0, 0, 0x7FFF0000)  # default: allow
    blocked = {k for code, jt, jf, k in prog if code == 0x15 and jt == 0 and jf == 1}
    assert {101, 165, 272, 308, 321, 425, 435} <= blocked  # ptrace, mount, unshare, setns, bpf, io_uring, clone3
    assert (0x45, 0, 1, 0x7E020000) in prog  # clone with any CLONE_NEW* flag
    assert len(prog) < 255  # every jump offset fits in a byte


def test_seccomp_filter_for_unknown_arch_is_refused():
    with pytest.raises(ValueError, match="no seccomp filter for architecture 'mips'"):
        build_filter("mips")


# ---------------------------------------------------------------- jobs


def test_jobs_from_dicts():
    assert job_from_dict({"code": "x"}) == RunJob(code="x")
    job = job_from_dict({"code": "x", "tests": ["assert x"], "limits": {"time_s": 2}})
    assert job == TestJob(code="x", tests=["assert x"], limits=Limits(time_s=2))
    assert job_from_dict(job.to_dict()) == job
    with pytest.raises(ValueError, match=r"unknown RunJob field\(s\) \['stdn'\]"):
        job_from_dict({"code": "x", "stdn": ""})
    with pytest.raises(ValueError, match="job kind must be 'run' or 'tests'"):
        job_from_dict({"code": "x", "kind": "compile"})


# ---------------------------------------------------------------- harness wire format


def test_wire_round_trips_exact_builtin_types():
    from rlkit.sandbox._wire import decode, dumps, encode, loads

    value = [None, True, 1, -2.5, "é\udc80", b"\x00", bytearray(b"b"), (1, (2,)), {1: {"k"}}, frozenset({3}), 2j,
             10**5000, float("inf")]  # fmt: skip
    back = decode(loads(dumps(encode(value, None))), remote=None)
    assert back == value and [type(v) for v in back] == [type(v) for v in value]


def test_wire_turns_other_objects_into_handles_and_rejects_malformed_input():
    from rlkit.sandbox._wire import ProgramDied, decode, encode, loads

    class Int(int):
        pass

    handles = []
    encoded = encode([Int(3), object()], lambda v: handles.append(v) or {"h": len(handles), "n": type(v).__name__})
    assert encoded == [{"h": 1, "n": "Int"}, {"h": 2, "n": "object"}]
    assert decode(encoded, remote=lambda key, name: (key, name)) == [(1, "Int"), (2, "object")]
    with pytest.raises(TypeError, match="cannot be passed to the program"):
        encode(object(), None)
    for bad in ({"x": 1}, {"t": [1], "d": []}, {"h": "1"}, {"m": "antigravity"}):
        with pytest.raises(ProgramDied, match="malformed value"):
            decode(bad, remote=lambda key, name: None)
    for text in ("[1,", "{} {}", "\xff"):
        with pytest.raises(ValueError):
            loads(text.encode("latin-1") if text == "\xff" else text)
