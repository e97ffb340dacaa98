"""``rlkit sandbox``: help, info, run, and serve answering a client."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import requires_bwrap

from rlkit.sandbox import SandboxClient, SandboxServiceError
from rlkit.sandbox.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "serve" in out and "run" in out and "info" in out
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    assert "--port" in capsys.readouterr().out


@requires_bwrap
def test_info_and_run(capsys, tmp_path):
    assert main(["info"]) == 0
    assert json.loads(capsys.readouterr().out)["isolation"] == "bwrap"
    source, stdin = tmp_path / "prog.cpp", tmp_path / "in.txt"
    source.write_text("#include <iostream>\nint main() { int x; std::cin >> x; std::cout << x + 1 << '\\n'; }")
    stdin.write_text("41")
    assert main(["run", str(source), "--stdin-file", str(stdin), "--time-s", "20"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["status"], result["stdout"]) == ("ok", "42\n")
    failing = tmp_path / "fail.py"
    failing.write_text("raise SystemExit(3)")
    assert main(["run", str(failing)]) == 1


def test_bad_arguments_exit_with_a_message(capsys):
    assert main(["run", "/nonexistent/prog.py"]) == 2
    assert "rlkit sandbox: error:" in capsys.readouterr().err


@requires_bwrap
def test_serve_answers_a_client(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = tmp_path / "token"
    token.write_text("cli-secret\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "rlkit.sandbox.cli", "serve", "--port", str(port), "--max-workers", "2",
           "--token-file", str(token)]  # fmt: skip
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        client = SandboxClient(f"http://127.0.0.1:{port}", token="cli-secret", retries=0, timeout_s=30)
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, server.stderr.read().decode()[-2000:]
            try:
                assert client.health()["ok"]
                break
            except SandboxServiceError:
                assert time.monotonic() < deadline, "the server did not come up within 30 s"
                time.sleep(0.1)
        report = client.run_tests("def f(): return 7", ["assert f() == 7"])
        assert report.passed == 1
        with pytest.raises(SandboxServiceError, match="401"):
            SandboxClient(f"http://127.0.0.1:{port}", retries=0).health()
    finally:
        server.terminate()
        assert server.wait(timeout=10) == 0  # SIGTERM stops it cleanly
