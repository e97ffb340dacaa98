"""`Sandbox.run`: statuses, exit codes, stdin/stdout, measurements, C++ compilation."""

from __future__ import annotations

import pytest
from conftest import requires_bwrap

from rlkit.sandbox import ExecResult, Limits, RunJob, Sandbox, TestJob, TestReport

pytestmark = requires_bwrap


def test_ok_run_reports_output_and_measurements(sandbox):
    res = sandbox.run("import sys\nprint(sys.stdin.read()[::-1])\nprint('err', file=sys.stderr)", stdin="abc")
    assert isinstance(res, ExecResult)
    assert (res.status, res.returncode, res.stdout, res.stderr) == ("ok", 0, "cba\n", "err\n")
    assert 0 < res.time_s < 5 and res.cpu_s > 0 and res.memory_mb > 0
    assert not res.stdout_truncated and not res.stderr_truncated


def test_exit_code_and_exception_are_runtime_errors(sandbox):
    assert sandbox.run("import sys\nsys.exit(3)").returncode == 3
    res = sandbox.run("raise ValueError('boom')")
    assert res.status == "runtime_error" and res.returncode == 1
    assert res.stderr.strip().endswith("ValueError: boom")


def test_large_stdin_and_output_round_trip(sandbox):
    data = "".join(f"{i}\n" for i in range(200_000))  # ~1.3 MB, more than a pipe holds
    res = sandbox.run("import sys\nprint(sum(int(x) for x in sys.stdin))", stdin=data, limits=Limits(time_s=10))
    assert res.stdout == f"{sum(range(200_000))}\n"


def test_program_ignoring_its_stdin_does_not_hang(sandbox):
    res = sandbox.run("print('no reading')", stdin="x" * (1 << 20))
    assert res.status == "ok" and res.stdout == "no reading\n"


def test_rlimits_inside_match_the_limits(sandbox):
    limits = Limits(time_s=2.5, memory_mb=300, nproc=7, file_size_mb=3, open_files=40)
    code = (
        "import resource as r\n"
        "for n in ('CPU', 'AS', 'NPROC', 'FSIZE', 'NOFILE', 'CORE'): print(*r.getrlimit(getattr(r, 'RLIMIT_' + n)))"
    )
    lines = sandbox.run(code, limits=limits).stdout.splitlines()
    assert lines == ["3 4", f"{300 << 20} {300 << 20}", "7 7", f"{3 << 20} {3 << 20}", "40 40", "0 0"]


def test_unicode_and_lone_surrogates_are_handled(sandbox):
    assert sandbox.run("print('héllo ✓')").stdout == "héllo ✓\n"
    assert sandbox.run("print('x')\n# \udc80").status == "runtime_error"  # not valid UTF-8 source


def test_limits_override_per_call(sandbox):
    res = sandbox.run("print('x' * 5000)", limits=Limits(output_kb=1))
    assert res.status == "output_limit" and len(res.stdout) == 1024


def test_unknown_language_and_bad_arguments_are_rejected(sandbox):
    with pytest.raises(ValueError, match="unsupported language 'rust'; supported: python, cpp"):
        sandbox.run("fn main() {}", language="rust")
    with pytest.raises(TypeError, match="code must be a str"):
        sandbox.run(b"print(1)")
    with pytest.raises(TypeError, match="limits must be a Limits"):
        sandbox.run("print(1)", limits={"time_s": 1})


def test_cpp_compiles_and_runs(sandbox):
    code = "#include <iostream>\nint main() { long a, b; std::cin >> a >> b; std::cout << a * b << std::endl; }"
    res = sandbox.run(code, language="c++", stdin="6 7")
    assert (res.status, res.stdout) == ("ok", "42\n")


def test_cpp_compile_error_carries_the_diagnostics(sandbox):
    res = sandbox.run("int main() { return undefined_name; }", language="cpp")
    assert res.status == "compile_error" and res.returncode == 1
    assert "undefined_name" in res.stderr and res.stdout == ""


def test_cpp_runtime_errors(sandbox):
    assert sandbox.run("int main() { return 4; }", language="cpp").returncode == 4
    res = sandbox.run("#include <cstdlib>\nint main() { abort(); }", language="cpp")
    assert (res.status, res.returncode) == ("runtime_error", -6)
    grow = "#include <vector>\nint main() { std::vector<char> v; while (true) v.resize(v.size() * 2 + (1 << 20)); }"
    res = sandbox.run(grow,
                      language="cpp")  # fmt: skip
    assert res.status == "memory_limit"


def test_run_many_keeps_order_and_isolates_failures(sandbox):
    jobs = [
        RunJob(code="print(1)"),
        RunJob(code="while True: pass", limits=Limits(time_s=0.5)),
        {"code": "raise SystemExit(2)"},
        TestJob(code="def f(): return 1", tests=["assert f() == 1"]),
        {"code": "print(2)", "kind": "run", "language": "cobol"},
        RunJob(code="print(3)"),
    ]
    results = sandbox.run_many(jobs, max_workers=2)
    assert [type(r) for r in results] == [ExecResult, ExecResult, ExecResult, TestReport, ExecResult, ExecResult]
    assert [r.status for r in results] == ["ok", "timeout", "runtime_error", "ok", "sandbox_error", "ok"]
    assert results[0].stdout == "1\n" and results[5].stdout == "3\n" and results[3].passed == 1
    assert "unsupported language 'cobol'" in results[4].stderr


def test_run_many_parallelism_is_bounded(sandbox):
    """Four one-second sleeps on two workers take two rounds: not one (all at once), not four."""
    jobs = [RunJob(code="import time\ntime.sleep(1.0)")] * 4
    import time

    start = time.monotonic()
    results = sandbox.run_many(jobs, max_workers=2)
    elapsed = time.monotonic() - start
    assert all(r.status == "ok" for r in results)
    assert 2.0 <= elapsed < 3.5


def test_describe_names_the_isolation(sandbox):
    info = sandbox.describe()
    assert info["isolation"] == "bwrap" and info["python"]
    assert info["cgroups"] in ("v1", "v2", "none")


def test_custom_ro_binds_are_visible_read_only(tmp_path):
    (tmp_path / "data.txt").write_text("shared data\n")
    tmp_path.chmod(0o755)  # programs run as an unprivileged uid: bound paths must be world-readable
    sb = Sandbox(ro_binds=[(str(tmp_path), "/data")])
    res = sb.run(
        "print(open('/data/data.txt').read(), end='')\ntry: open('/data/new', 'w')\nexcept OSError as e: print(e.errno)"
    )
    assert res.stdout == "shared data\n30\n"  # EROFS
    with pytest.raises(FileNotFoundError, match="ro_binds path"):
        Sandbox(ro_binds=["/nonexistent/rlkit"])
