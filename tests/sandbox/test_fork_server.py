"""Fork servers: one started sandbox serves many runs; nothing of one run reaches the next or the server.

Each test checks on the host side what the server did (how many servers were
started, which processes are left) and, inside the next run, what that run
can see of the previous one.
"""

from __future__ import annotations

import json
import os

import pytest
from conftest import make_sandbox, requires_bwrap, sandbox_processes

from rlkit.sandbox import Limits, RunJob, Sandbox

pytestmark = requires_bwrap
LIMITS = Limits(time_s=5.0, memory_mb=256, nproc=16, disk_mb=16, file_size_mb=4)
LEFTOVERS = (
    "import os, json\n"
    "me = os.getpid()\n"
    "procs = [p for p in os.listdir('/proc') if p.isdigit() and int(p) not in (1, os.getppid(), me)]\n"
    "print(json.dumps({'tmp': os.listdir('/tmp'), 'shm': os.listdir('/dev/shm'), 'procs': procs}))\n"
)


@pytest.fixture()
def sb() -> Sandbox:
    sandbox = make_sandbox("fork-server", limits=LIMITS)
    yield sandbox
    sandbox.close()


def started(sandbox: Sandbox) -> int:
    return sandbox._servers.started


def leftovers(sandbox: Sandbox) -> dict:
    res = sandbox.run(LEFTOVERS)
    assert res.status == "ok", res
    return json.loads(res.stdout)


def test_runs_share_one_server_and_each_gets_its_own_uid(sb):
    uids = [sb.run("import os\nprint(os.getuid(), os.getgid())").stdout.split() for _ in range(6)]
    assert started(sb) == 1
    assert len({u for u, _ in uids}) == 6 and all(u == g and int(u) >= 1_000_000_000 for u, g in uids)
    reports = [sb.run_tests("from typing import List\ndef f(x: List[int]): return sum(x)", ["assert f([1, 2]) == 3"])]
    assert reports[0].passed == 1 and started(sb) == 1


def test_files_left_in_the_work_dirs_are_gone_before_the_next_run(sb):
    code = (
        "import os\n"
        "open('/tmp/note', 'w').write('for the next run')\n"
        "os.makedirs('/tmp/d/e'); open('/tmp/d/e/f', 'w').write('x'); os.chmod('/tmp/d', 0)\n"
        "open('/dev/shm/shared', 'w').write('x')\n"
        "os.symlink('/etc/passwd', '/tmp/link')\n"
        "print(sorted(os.listdir('/tmp')))\n"
    )
    res = sb.run(code)
    assert res.stdout.strip() == "['d', 'link', 'main.py', 'note']"
    assert leftovers(sb) == {"tmp": ["main.py"], "shm": [], "procs": []}  # only the run's own source file
    assert started(sb) == 1


def test_a_daemon_left_behind_is_killed_before_the_next_run(sb):
    code = (
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        while True:\n"
        "            try: open('/dev/shm/daemon', 'a').write('.')\n"
        "            except OSError: pass\n"
        "            time.sleep(0.01)\n"
        "    os._exit(0)\n"
        "time.sleep(0.1)\n"
        "print('left a daemon')\n"
    )
    assert sb.run(code).stdout == "left a daemon\n"
    assert sandbox_processes() == []  # on the host, before the next run starts
    assert leftovers(sb) == {"tmp": ["main.py"], "shm": [], "procs": []}
    assert started(sb) == 1


def test_the_server_is_out_of_the_programs_reach(sb):
    code = (
        "import os, signal\n"
        "others = [int(p) for p in os.listdir('/proc') if p.isdigit() and int(p) != os.getpid()]\n"
        "print(len(others), sum(b'_zygote' in open(f'/proc/{p}/cmdline', 'rb').read() for p in others))\n"
        "for pid in others:  # the namespace's init (bwrap) and the server\n"
        "    for what in ('environ', 'mem', 'fd/0', 'maps'):\n"
        "        try: open(f'/proc/{pid}/{what}', 'rb').read(1); print('READ', pid, what)\n"
        "        except OSError as e: print('denied')\n"
        "    for sig in (signal.SIGKILL, signal.SIGSTOP, signal.SIGTERM):\n"
        "        try: os.kill(pid, sig); print('SIGNALLED', pid)\n"
        "        except OSError: print('denied')\n"
    )
    res = sb.run(code)
    lines = res.stdout.splitlines()
    assert lines[0] == "2 2" and lines[1:] == ["denied"] * 14, res
    assert sb.run("print('still serving')").stdout == "still serving\n" and started(sb) == 1


def test_a_timeout_stops_the_server_and_the_next_run_gets_a_fresh_one(sb):
    assert sb.run("print(1)").stdout == "1\n"
    res = sb.run("open('/tmp/mark', 'w')\nwhile True: pass", limits=LIMITS.with_(time_s=0.5))
    assert res.status == "timeout" and res.returncode == -9
    assert sandbox_processes() == []
    assert leftovers(sb)["tmp"] == ["main.py"]
    assert started(sb) == 2


def test_an_out_of_memory_kill_takes_the_program_not_the_server(sb):
    res = sb.run("b = []\nwhile True: b.append(bytearray(8 << 20)); b[-1][::4096] = b'x' * (2048)")
    assert res.status == "memory_limit", res
    assert sb.run("print('after oom')").stdout == "after oom\n"
    assert started(sb) == 1


def test_system_v_ipc_left_behind_retires_the_server(sb):
    code = "import ctypes\nprint(ctypes.CDLL(None).shmget(0, 4096, 0o1666) >= 0)"  # IPC_PRIVATE | IPC_CREAT
    assert sb.run(code).stdout == "True\n"
    res = sb.run("print(len(open('/proc/sysvipc/shm').read().splitlines()))")
    assert res.stdout == "1\n"  # the header only: a fresh server, fresh IPC namespace
    assert started(sb) == 2


def test_posix_message_queues_are_refused(sb):
    code = (
        "import ctypes, os\nrt = ctypes.CDLL('librt.so.1', use_errno=True)\n"
        "print(rt.mq_open(b'/q', os.O_CREAT | os.O_RDWR, 0o666, None), ctypes.get_errno())"
    )
    assert sb.run(code).stdout == "-1 1\n"  # EPERM: a queue would outlive the run unseen


def test_random_state_is_not_shared_between_runs(sb):
    code = "import random, os\nvalue = (random.random(), os.urandom(8).hex())"
    reports = [sb.run_tests(code, ["print(value)"]) for _ in range(3)]
    outputs = [r.runs[0].stdout for r in reports]
    assert all(r.passed == 1 for r in reports) and len(set(outputs)) == 3


def test_batches_reuse_the_servers_of_earlier_batches(sb):
    jobs = [RunJob(code=f"print({i})") for i in range(8)]
    for _ in range(3):
        results = sb.run_many(jobs, max_workers=2)
        assert [r.stdout for r in results] == [f"{i}\n" for i in range(8)]
    assert started(sb) <= 2


def test_each_limit_set_applies_to_its_own_run(sb):
    small, large = LIMITS.with_(memory_mb=64), LIMITS.with_(memory_mb=512)
    grab = "b = bytearray(200 << 20)\nb[::4096] = b'x' * len(b[::4096])\nprint('ok')"
    assert sb.run(grab, limits=small).status == "memory_limit"
    assert sb.run(grab, limits=large).stdout == "ok\n"
    assert sb.run(grab, limits=small).status == "memory_limit"
    nproc = "import os\nn = 0\ntry:\n    while n < 64:\n        os.fork() or os._exit(0); n += 1\n" \
            "except OSError: pass\nprint(n)"  # fmt: skip
    assert int(sb.run(nproc, limits=LIMITS.with_(nproc=4)).stdout) < 64


def test_a_forked_child_process_starts_servers_of_its_own(sb):
    assert sb.run("print('parent')").stdout == "parent\n"
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            res = sb.run("print('child')")
            os.write(write, json.dumps([res.stdout, started(sb)]).encode())
            sb.close()  # os._exit skips atexit: stop the child's own server (and its cgroup) here
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        stdout, child_started = json.loads(f.read() or '[null, 0]')
    os.waitpid(pid, 0)
    assert stdout == "child\n" and child_started == 2  # the parent's count (1) plus its own
    assert sb.run("print('parent again')").stdout == "parent again\n"


def test_closing_stops_every_server_and_removes_its_cgroup(sb):
    sb.run_many([RunJob(code="print(1)")] * 4, max_workers=2)
    servers = [server for idle in sb._servers._idle.values() for server in idle]
    assert 1 <= len(servers) <= 2
    sb.close()
    for server in servers:
        assert not server.alive
        with pytest.raises(ProcessLookupError):
            os.kill(server._spawned_pid, 0)
        assert server.group is None or not any(d.exists() for d in server.group.dirs.values())


def test_a_process_that_exits_leaves_no_server_and_no_cgroup(sb):
    import subprocess
    import sys

    from rlkit.sandbox.cgroups import detect_cgroups

    script = "from rlkit.sandbox import Sandbox\nimport os\nprint(os.getpid())\nprint(Sandbox().run('print(7)').stdout)"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    pid, seven = out.stdout.split()
    assert seven == "7"
    for base in detect_cgroups()._bases.values():
        assert not (base.parent / f"rlkit-sandbox-{pid}").exists()  # its servers' groups, then its base, removed
    assert all(os.getpid() in _ancestors(pid) for pid in _server_pids())  # only this process's servers live


def _server_pids() -> list[int]:
    from pathlib import Path

    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and b"_zygote" in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def _ancestors(pid: int) -> list[int]:
    chain = []
    while pid > 1:
        try:
            with open(f"/proc/{pid}/status") as f:
                pid = int(next(line for line in f if line.startswith("PPid:")).split()[1])
        except (OSError, StopIteration):
            break
        chain.append(pid)
    return chain


# ---------------------------------------------------------------- scripts run in the server's interpreter

SCRIPTS = {
    "exit_code": "import sys\nprint('a')\nsys.exit(3)",
    "exit_message": "import sys\nsys.exit('bye')",
    "exception": "def f():\n    raise ValueError('bad value')\nf()",
    "keyboard_interrupt": "raise KeyboardInterrupt",
    "name_file_argv": "import sys\nprint(__name__, __file__, sys.argv)",
    "thread_outlives_main": (
        "import threading, time\n"
        "def late():\n    time.sleep(0.2); print('thread done', flush=True)\n"
        "threading.Thread(target=late).start()\nprint('main done')"
    ),
    "atexit": "import atexit\natexit.register(print, 'at exit')\nprint('body')",
    "stdin_lines": "import sys\nprint(sum(int(x) for x in sys.stdin.read().split()))",
    "syntax_error": "def f(:\n    pass",
    "bad_utf8": "print('x')\n# \udc80",
    "coding_cookie": "# -*- coding: latin-1 -*-\nprint(len('\xe9'))",
    "site_packages_and_path": "import sys\nprint(sorted(p for p in sys.path if 'packages' in p))",
    "main_module_pickles": "import pickle\nclass P: pass\nprint(type(pickle.loads(pickle.dumps(P()))).__name__)",
    "unflushed_output": "import sys\nsys.stdout.write('no newline')",
}


@pytest.fixture(scope="module")
def both():
    return {mode: make_sandbox(mode, limits=LIMITS) for mode in ("fork-server", "one-off")}


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_a_script_in_the_server_behaves_as_python_dash_i_would(both, name):
    code = SCRIPTS[name].encode("utf-8", "surrogatepass").decode("utf-8", "surrogatepass")
    served, one_off = (both[mode].run(code, stdin="1 2\n3\n") for mode in ("fork-server", "one-off"))
    assert (served.status, served.returncode, served.stdout) == (one_off.status, one_off.returncode, one_off.stdout)
    assert served.stderr.splitlines()[-1:] == one_off.stderr.splitlines()[-1:]
    assert "_script.py" not in served.stderr and "_zygote" not in served.stderr
    assert both["fork-server"]._servers.started == 1


def test_no_program_code_tests_or_input_pass_through_the_servers_memory(sb):
    """Runs are forked from the server: what it holds, every later run inherits. It must never see a run's
    code, tests or stdin (they reach the run's own process through pipes and kernel copies only)."""
    import secrets

    markers = [f"MARKER{i}-{secrets.token_hex(8)}" for i in range(4)]
    assert sb.run_tests(f"def f():\n    return '{markers[0]}'", [f"assert f() != '{markers[1]}'"]).passed == 1
    assert sb.run(f"print('{markers[2]}', input())", stdin=markers[3]).stdout.startswith(markers[2])
    (server,) = [s for idle in sb._servers._idle.values() for s in idle]
    (zygote,) = [
        pid for pid in _server_pids()
        if server._spawned_pid in _ancestors(pid) and not _argv0(pid).endswith(b"bwrap")
    ]  # fmt: skip
    memory = _writable_memory(zygote)
    assert len(memory) > 1 << 20  # the server's heap was read
    assert not [m for m in markers if m.encode() in memory]


def _argv0(pid: int) -> bytes:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().split(b"\0")[0]


def _writable_memory(pid: int) -> bytes:
    chunks = []
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for line in maps:
            addresses, perms = line.split()[:2]
            if not perms.startswith("rw"):
                continue
            start, end = (int(a, 16) for a in addresses.split("-"))
            try:
                mem.seek(start)
                chunks.append(mem.read(end - start))
            except OSError:
                continue
    return b"".join(chunks)


def _no_server(disk_mb: int, network: bool):
    raise OSError("the fork server did not start: bwrap: Unexpected capability")


def test_where_no_server_starts_programs_get_one_off_sandboxes_after_a_warning():
    if os.geteuid() != 0:
        pytest.skip("fork servers need a host running as root")
    sandbox = Sandbox(limits=LIMITS)  # fork servers where they can run
    sandbox._servers._factory = _no_server
    with pytest.warns(RuntimeWarning, match="could not start a fork server: .*Unexpected capability"):
        assert sandbox.run("print(5)").stdout == "5\n"
    assert sandbox.describe()["fork_server"] is False
    report = sandbox.run_tests("x = 2", ["assert x == 2"])
    assert report.passed == 1
    sandbox.close()


def test_a_required_server_that_cannot_start_is_a_sandbox_error(sb):
    sb._servers._factory = _no_server
    res = sb.run("print(5)")
    assert res.status == "sandbox_error" and "could not start a fork server" in res.stderr
