"""The sandbox started by an ordinary (non-root) user: bwrap with a user namespace, no cgroups."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import requires_bwrap

pytestmark = requires_bwrap
ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, sys
sys.path.insert(0, {root!r})
from rlkit.sandbox import Limits, Sandbox
sb = Sandbox(limits=Limits(time_s=3))
probe = "import os\\nst = dict(l.split(':', 1) for l in open('/proc/self/status').read().splitlines())\\n" \\
        "print(os.getuid(), *[st[k].strip() for k in ('CapEff', 'CapBnd', 'NoNewPrivs', 'Seccomp')])"
bomb = "import os\\nwhile True:\\n    try: os.fork()\\n    except OSError: pass"
report = sb.run_tests("def f(x): return 2 * x", ["assert f(2) == 4", "assert f(2) == 5"])
print(json.dumps({{
    "cgroups": sb.describe()["cgroups"],
    "probe": sb.run(probe).stdout.split(),
    "verdicts": [r.status for r in report.results],
    "bomb": sb.run(bomb, limits=Limits(time_s=1, nproc=8)).status,
}}))
"""


def test_sandbox_works_for_an_unprivileged_user():
    if os.geteuid() != 0:
        pytest.skip("needs root to start the test as another user")
    if not Path("/usr/bin/python3").exists() or not shutil.which("setpriv"):
        pytest.skip("needs /usr/bin/python3 and setpriv")
    cmd = ["setpriv", "--reuid=4242", "--regid=4242", "--clear-groups", "--", "/usr/bin/python3", "-I", "-c",
           SCRIPT.format(root=str(ROOT))]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"}, cwd="/")
    if "setting up uid map" in proc.stderr or "No permissions to create new namespace" in proc.stderr:
        pytest.skip("unprivileged user namespaces are disabled on this host")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["probe"] == ["4242", "0000000000000000", "0000000000000000", "1", "2"]
    assert out["verdicts"] == ["passed", "failed"]
    assert out["bomb"] == "timeout"
