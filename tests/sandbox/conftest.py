"""Fixtures for the sandbox tests: a shared Sandbox, and host-side witnesses of escapes.

Escapes are detected on the host, never from the program's own report: a
canary directory the program must not read or change, a secret in this
process's environment, TCP/UDP listeners on 127.0.0.1 that count what reaches
them, and a decoy process the program must not be able to signal.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rlkit.sandbox import Limits, Sandbox

HAVE_BWRAP = shutil.which("bwrap") is not None
requires_bwrap = pytest.mark.skipif(not HAVE_BWRAP, reason="bubblewrap (bwrap) is not installed")

# Sandboxed programs run as a random uid in this range (rlkit.sandbox.isolation).
SANDBOX_UIDS = range(1_000_000_000, 2_000_000_000)


# Both ways a Sandbox runs programs: fork servers (root hosts) and a sandbox of its own per program.
SANDBOX_MODES = ("fork-server", "one-off")
_session_sandboxes: list[Sandbox] = []


def make_sandbox(mode: str, **kwargs) -> Sandbox:
    """A Sandbox running programs the ``mode`` way (skips where this host cannot); closed by `close_sandboxes`."""
    if not HAVE_BWRAP:
        pytest.skip("bubblewrap (bwrap) is not installed")
    if mode == "fork-server" and os.geteuid() != 0:
        pytest.skip("fork servers need a host running as root")
    sb = Sandbox(fork_server=mode == "fork-server", **kwargs)
    _session_sandboxes.append(sb)
    return sb


def close_sandboxes() -> None:
    """Stop the fork servers and warm harnesses of every Sandbox made by `make_sandbox`."""
    for sb in _session_sandboxes:
        sb.close()


@pytest.fixture(scope="session", params=SANDBOX_MODES)
def sandbox(request) -> Sandbox:
    # No prewarmed harnesses here: tests count the sandbox processes left behind.
    limits = Limits(time_s=5.0, memory_mb=256, nproc=16, disk_mb=16, file_size_mb=4)
    yield make_sandbox(request.param, limits=limits, prewarm=False)
    close_sandboxes()


@dataclass
class Canary:
    """A host directory with a secret file; `unchanged()` compares names, modes and contents."""

    root: Path
    secret: str
    snapshot: dict[str, str] = field(default_factory=dict)

    @property
    def secret_file(self) -> Path:
        return self.root / "secret.txt"

    def take(self) -> dict[str, str]:
        state = {}
        for path in sorted(self.root.rglob("*")):
            st = path.lstat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
            state[str(path)] = f"{st.st_mode:o}:{st.st_uid}:{st.st_size}:{digest}"
        return state

    def unchanged(self) -> bool:
        return self.take() == self.snapshot


@pytest.fixture(scope="session")
def canary(tmp_path_factory) -> Canary:
    root = tmp_path_factory.mktemp("rlkit-canary")
    secret = "CANARY-" + secrets.token_hex(16)
    c = Canary(root=root, secret=secret)
    c.secret_file.write_text(secret + "\n")
    (root / "dir").mkdir()
    (root / "dir" / "other.txt").write_text("unchanged\n")
    c.snapshot = c.take()
    return c


@pytest.fixture(scope="session")
def host_env_secret() -> str:
    """A secret in this process's environment; no program may print it."""
    value = "ENVSECRET-" + secrets.token_hex(16)
    os.environ["RLKIT_TEST_HOST_SECRET"] = value
    yield value
    os.environ.pop("RLKIT_TEST_HOST_SECRET", None)


class Listener:
    """TCP and UDP sockets on 127.0.0.1 that record every connection or datagram."""

    def __init__(self) -> None:
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen(16)
        self.tcp.settimeout(0.2)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.udp.settimeout(0.2)
        self.events: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=f, daemon=True) for f in (self._accept, self._recv)]
        for t in self._threads:
            t.start()

    @property
    def tcp_port(self) -> int:
        return self.tcp.getsockname()[1]

    @property
    def udp_port(self) -> int:
        return self.udp.getsockname()[1]

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, addr = self.tcp.accept()
            except OSError:
                continue
            self.events.append(f"tcp connection from {addr}")
            conn.close()

    def _recv(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.udp.recvfrom(4096)
            except OSError:
                continue
            self.events.append(f"udp datagram from {addr}: {data[:50]!r}")

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=2)
        self.tcp.close()
        self.udp.close()


@pytest.fixture(scope="session")
def listener() -> Listener:
    listen = Listener()
    yield listen
    listen.close()


@pytest.fixture(scope="session")
def decoy() -> subprocess.Popen:
    """A harmless host process (sleep) a sandboxed program must not be able to kill."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    yield proc
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def sandbox_processes() -> list[tuple[int, int, str]]:
    """(pid, uid, command) of live host processes running as a sandbox uid (zombies awaiting reaping excluded)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        uid = int(fields["Uid"].split()[0])
        if uid in SANDBOX_UIDS and not fields["State"].strip().startswith(("Z", "X")):
            found.append((int(entry.name), uid, cmd[:100]))
    return found
