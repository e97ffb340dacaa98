"""Without bubblewrap the sandbox refuses to run unless no isolation is chosen explicitly, with a warning."""

from __future__ import annotations

import pytest

from rlkit.sandbox import NO_ISOLATION_WARNING, Limits, Sandbox, SandboxUnavailableError


def test_missing_bwrap_refuses_with_the_fix_and_the_opt_in():
    with pytest.raises(SandboxUnavailableError) as info:
        Sandbox(bwrap="/nonexistent/bwrap")
    message = str(info.value)
    assert "'/nonexistent/bwrap') was not found" in message
    assert "apt-get install bubblewrap" in message and "isolation='none'" in message


def test_unknown_isolation_is_rejected():
    with pytest.raises(ValueError, match="isolation must be 'bwrap' or 'none', got 'docker'"):
        Sandbox(isolation="docker")


@pytest.fixture(scope="module")
def unisolated() -> Sandbox:
    with pytest.warns(RuntimeWarning) as record:
        sb = Sandbox(isolation="none", limits=Limits(time_s=5.0, memory_mb=512))
    assert str(record[0].message) == NO_ISOLATION_WARNING
    return sb


def test_warning_says_what_no_isolation_means():
    for words in ("WITHOUT isolation", "read and write every file", "network", "environment", "bubblewrap"):
        assert words in NO_ISOLATION_WARNING


def test_programs_and_tests_still_run_with_limits(unisolated, tmp_path):
    assert unisolated.describe()["isolation"] == "none"
    assert unisolated.run("print(input() * 2)", stdin="ab").stdout == "abab\n"
    assert unisolated.run("while True: pass", limits=Limits(time_s=0.5)).status == "timeout"
    report = unisolated.run_tests("def f(x): return x + 1", ["assert f(1) == 2", "assert f(1) == 3"])
    assert [r.status for r in report.results] == ["passed", "failed"]
    hack = unisolated.run_tests("import os\nos._exit(0)\ndef f(x): return x + 1", ["assert f(1) == 2"])
    assert hack.passed == 0


def test_cpp_compiles_in_a_private_temp_dir(unisolated):
    res = unisolated.run('#include <cstdio>\nint main() { puts("built"); }', language="cpp")
    assert (res.status, res.stdout) == ("ok", "built\n")


def test_too_old_bwrap_is_refused(tmp_path):
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho bubblewrap 0.6.1\n")
    fake.chmod(0o755)
    with pytest.raises(SandboxUnavailableError, match="is bubblewrap 0.6.1; rlkit needs 0.8 or newer"):
        Sandbox(bwrap=str(fake))
