"""`IsolatedProcess`: a long-lived program (REPL, tool) under the sandbox's isolation."""

from __future__ import annotations

import os
import time

import pytest
from conftest import requires_bwrap, sandbox_processes

from rlkit.sandbox import IsolatedProcess, Limits

pytestmark = requires_bwrap

REPL = [
    "/usr/bin/python3",
    "-I",
    "-u",
    "-c",
    "import sys\nfor line in sys.stdin:\n    print(repr(eval(line)), flush=True)",
]


def ask(proc: IsolatedProcess, expr: str) -> str:
    proc.write(expr.encode() + b"\n")
    return proc.readline(timeout_s=10).decode().rstrip("\n")


def test_repl_keeps_state_across_requests_and_is_isolated(canary, host_env_secret):
    with IsolatedProcess(REPL, limits=Limits(memory_mb=256)) as proc:
        assert ask(proc, "1 + 1") == "2"
        assert ask(proc, "__import__('os').getuid() != 0") == "True"
        assert ask(proc, f"__import__('os').path.exists({str(canary.secret_file)!r})") == "False"
        assert host_env_secret not in ask(proc, "dict(__import__('os').environ)")
        assert ask(proc, "__import__('socket').socket().connect_ex(('10.255.255.1', 80))") == "101"
        assert proc.alive
    assert not proc.alive
    assert sandbox_processes() == []


def test_read_only_and_read_write_binds(tmp_path):
    toolchain, scratch = tmp_path / "toolchain", tmp_path / "scratch"
    toolchain.mkdir()
    scratch.mkdir()
    (toolchain / "lib.txt").write_text("library")
    for d in (tmp_path, toolchain):
        d.chmod(0o755)
    owner = os.stat(scratch).st_uid
    with IsolatedProcess(
        REPL, ro_binds=[(str(toolchain), "/opt/tool")], rw_binds=[str(scratch)], cwd=str(scratch)
    ) as p:
        assert ask(p, "open('/opt/tool/lib.txt').read()") == "'library'"
        assert ask(p, "__import__('os').access('/opt/tool', __import__('os').W_OK)") == "False"
        assert ask(p, "open('out.txt', 'w').write('made inside')") == "11"
    assert (scratch / "out.txt").read_text() == "made inside"
    assert os.stat(scratch / "out.txt").st_uid == owner == os.stat(scratch).st_uid  # handed back on close


def test_read_timeouts_end_of_output_and_stderr():
    with IsolatedProcess(REPL) as proc:
        proc.write(b"__import__('time').sleep(1)\n")
        start = time.monotonic()
        with pytest.raises(TimeoutError, match="within 0.3 s"):
            proc.readline(timeout_s=0.3)
        assert time.monotonic() - start < 1.0
        assert proc.readline(timeout_s=10) == b"None\n"  # the late answer is still there, in order
        proc.write(b"1/0\n")  # kills the REPL
        assert proc.readline(timeout_s=10) == b""  # end of output
        proc.close()
        assert proc.returncode == 1
        assert proc.stderr_text().rstrip().endswith("ZeroDivisionError: division by zero")


def test_close_kills_the_whole_tree():
    code = (
        "import os, time, sys\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\n"
        "print('ready', flush=True)\ntime.sleep(60)"
    )
    proc = IsolatedProcess(["/usr/bin/python3", "-c", code], limits=Limits(nproc=8))
    assert proc.readline(timeout_s=10) == b"ready\n"
    assert len(sandbox_processes()) == 2
    proc.close()
    time.sleep(0.2)
    assert sandbox_processes() == []


def test_bad_arguments_are_rejected():
    with pytest.raises(TypeError, match="argv must be a non-empty list of strings"):
        IsolatedProcess("python3")
    with pytest.raises(FileNotFoundError, match="ro_binds: host path '/nonexistent' does not exist"):
        IsolatedProcess(REPL, ro_binds=["/nonexistent"])
    with pytest.raises(ValueError, match="must be absolute"):
        IsolatedProcess(REPL, rw_binds=[("/tmp", "relative")])
