"""How a program is isolated: the bubblewrap command line, or no isolation at all.

The sandboxed program sees a read-only minimal root (``/usr`` and the loader
files of ``/etc``), a fresh ``/proc`` and ``/dev``, a private memory-backed
``/tmp`` of bounded size as its work directory, no network (own network
namespace), its own PID/IPC/UTS namespaces, an empty environment apart from
``PATH``/``HOME``/``LANG``, and a seccomp filter (`rlkit.sandbox.seccomp`).

Dropping privileges: started by root, bwrap does *not* create a user
namespace (root mapped to another uid there is still host root to the
kernel). Instead ``setpriv`` inside the sandbox switches to a random
unprivileged uid/gid with no supplementary groups, clears every capability
set including the bounding set, locks the securebits and sets
no_new_privs, so nothing can regain privileges. Started by an ordinary user,
bwrap creates a user namespace (that user is already unprivileged on the
host) and forbids nested ones.

Rlimits are applied inside the sandbox by ``/bin/sh``'s ``ulimit`` right
before the program starts, so they bind the program and not bwrap.
"""

from __future__ import annotations

import functools
import os
import secrets
import shutil
import subprocess
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Mapping

from rlkit.sandbox import seccomp
from rlkit.sandbox.limits import Limits

IsolationMode = Literal["bwrap", "none"]

WORK_DIR = "/tmp"
BASE_ENV: Mapping[str, str] = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": WORK_DIR, "LANG": "C.UTF-8"}
NO_ISOLATION_WARNING = (
    "rlkit.sandbox is running untrusted code WITHOUT isolation (isolation='none'): the program runs "
    "as this user, can read and write every file this user can, reach the network, see and signal "
    "other processes and read this process's environment. Only rlimits and the wall-clock timeout "
    "apply. Install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap) to isolate it."
)

# Inside the sandbox: set both soft and hard rlimits, then exec the program.
# CPU time: SIGXCPU at the soft limit (reported as a timeout), SIGKILL a second later.
_LIMITS_SCRIPT = (
    'ulimit -S -t "$1" && ulimit -H -t "$(($1 + 1))" && ulimit -v "$2" && ulimit -p "$3" '
    '&& ulimit -f "$4" && ulimit -n "$5" && ulimit -c 0 && shift 5 && exec "$@"'
)
_UID_RANGE = (1_000_000_000, 2_000_000_000)
FORK_SERVER_CAPS = ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP")
_MIN_BWRAP = (0, 8)


class SandboxUnavailableError(RuntimeError):
    """bubblewrap (or setpriv, when running as root) is missing and no isolation was not opted into."""


@dataclass
class RunSpec:
    """One program to start: its argv inside the sandbox and what it sees.

    ``files`` maps an absolute path under the work dir to ``(content, mode)``;
    ``ro_binds``/``rw_binds`` are ``(host path, sandbox path)`` pairs;
    ``pass_fds`` are host descriptors the program inherits under the same number.
    """

    argv: list[str]
    limits: Limits
    files: dict[str, tuple[bytes, int]] = field(default_factory=dict)
    ro_binds: list[tuple[str, str]] = field(default_factory=list)
    rw_binds: list[tuple[str, str]] = field(default_factory=list)
    pass_fds: list[int] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = WORK_DIR
    network: bool = False
    uid: int | None = None  # the unprivileged uid (root hosts); random when None
    # Root hosts: start with a second, effective-only gid. The kernel makes such a process
    # non-dumpable, and a child that drops to the real gid can no longer ptrace it or open
    # its /proc files (the assert harness's evaluator relies on this).
    split_gid: bool = False
    # Start a fork server (`rlkit.sandbox._zygote`) instead of a program: it keeps CAP_SETUID,
    # CAP_SETGID and CAP_SETPCAP (nothing else) to drop each program it forks to its own uid,
    # and applies each program's rlimits itself. Root hosts only.
    fork_server: bool = False
    # ``[path, args...]`` of a Python main (a module with ``main(argv)``) that a fork server
    # has imported: the server calls it in its own started interpreter instead of exec'ing
    # ``argv``, which means the same. Descriptor placeholders are replaced in both.
    main_argv: list[str] | None = None


@dataclass
class Prepared:
    """A host command line for one run, plus the descriptors it must inherit."""

    argv: list[str]
    pass_fds: list[int]
    cwd: str | None
    uid: int | None
    cleanup_fds: list[int]
    host_work_dir: Path | None = None

    def close_fds(self) -> None:
        """Close the descriptors only the starting process needed."""
        for fd in self.cleanup_fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self.cleanup_fds = []

    def close(self) -> None:
        """Close the descriptors and delete the host work dir (no-isolation mode)."""
        self.close_fds()
        if self.host_work_dir is not None:
            shutil.rmtree(self.host_work_dir, ignore_errors=True)
            self.host_work_dir = None


class Isolation:
    """Builds host command lines for `RunSpec`s under one isolation mode."""

    def __init__(self, *, mode: IsolationMode = "bwrap", bwrap: str | None = None, setpriv: str | None = None):
        if mode not in ("bwrap", "none"):
            raise ValueError(f"isolation must be 'bwrap' or 'none', got {mode!r}")
        self.mode: IsolationMode = mode
        self.privileged = os.geteuid() == 0
        self.bwrap = shutil.which(bwrap or "bwrap") or ""
        self.setpriv = shutil.which(setpriv or "setpriv") or ""
        self._seccomp = seccomp.build_filter() if seccomp.supported() else None
        if mode == "none":
            warnings.warn(NO_ISOLATION_WARNING, RuntimeWarning, stacklevel=3)
            return
        if not self.bwrap:
            raise SandboxUnavailableError(
                f"bubblewrap ({bwrap or 'bwrap'!r}) was not found, so untrusted code cannot be isolated. "
                "Install it (Debian/Ubuntu: apt-get install bubblewrap), pass bwrap='/path/to/bwrap', "
                "or opt in to running WITHOUT isolation with isolation='none'."
            )
        version = _bwrap_version(self.bwrap)
        if version < _MIN_BWRAP:
            raise SandboxUnavailableError(
                f"{self.bwrap} is bubblewrap {'.'.join(map(str, version))}; rlkit needs "
                f"{'.'.join(map(str, _MIN_BWRAP))} or newer (--size for the work dir, --disable-userns)"
            )
        if self.privileged and not self.setpriv:
            raise SandboxUnavailableError(
                "running as root needs 'setpriv' (util-linux) to drop to an unprivileged uid inside "
                "the sandbox; install util-linux or run as an unprivileged user"
            )

    @property
    def seccomp_enabled(self) -> bool:
        return self.mode == "bwrap" and self._seccomp is not None

    def prepare(self, spec: RunSpec) -> Prepared:
        """The host argv for ``spec``; call ``Prepared.close()`` once the process has started."""
        if self.mode == "none":
            return self._prepare_none(spec)
        return self._prepare_bwrap(spec)

    def _prepare_bwrap(self, spec: RunSpec) -> Prepared:
        fds: list[int] = []
        args = [self.bwrap, "--die-with-parent", "--new-session", "--clearenv"]
        args += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--hostname", "sandbox", "--unshare-cgroup-try"]
        if not spec.network:
            args.append("--unshare-net")
        if not self.privileged:
            args += ["--unshare-user", "--disable-userns"]
        args += _root_filesystem()
        args += ["--proc", "/proc", "--ro-bind", "/proc/sys", "/proc/sys", "--dev", "/dev"]
        tmpfs_size = str(spec.limits.disk_mb * 1024 * 1024)
        args += ["--perms", "1777", "--size", tmpfs_size, "--tmpfs", WORK_DIR]
        args += ["--perms", "1777", "--size", tmpfs_size, "--tmpfs", "/dev/shm"]
        made: set[str] = set()
        for flag, binds in (("--ro-bind", spec.ro_binds), ("--bind", spec.rw_binds)):
            for src, dest in binds:
                args += _parent_dirs(dest, made) + [flag, src, dest]
        for dest, (content, mode) in spec.files.items():
            fd = memfd(content)
            fds.append(fd)
            args += ["--perms", f"{mode:o}", "--file", str(fd), dest]
        if self._seccomp is not None:
            fd = memfd(self._seccomp)
            fds.append(fd)
            args += ["--seccomp", str(fd)]
        for key, value in {**BASE_ENV, **spec.env}.items():
            args += ["--setenv", key, value]
        if spec.fork_server:
            if not self.privileged:
                raise ValueError("a fork server needs a root host (it drops each program to its own uid)")
            args += ["--cap-drop", "ALL"] + [a for cap in FORK_SERVER_CAPS for a in ("--cap-add", cap)]
            args += ["--chdir", spec.cwd, "--", *spec.argv]
            return Prepared(argv=args, pass_fds=fds + list(spec.pass_fds), cwd=None, uid=None, cleanup_fds=fds)
        args += ["--chdir", spec.cwd, "--"]
        args += _limits_prefix(spec.limits)
        uid = None
        if self.privileged:
            uid = spec.uid if spec.uid is not None else random_uid()
            gids = [f"--rgid={uid}", f"--egid={random_uid()}"] if spec.split_gid else [f"--regid={uid}"]
            args += [
                self.setpriv, f"--reuid={uid}", *gids, "--clear-groups",
                "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs",
                "--securebits=+noroot,+noroot_locked,+no_setuid_fixup,+no_setuid_fixup_locked,+keep_caps_locked",
                "--",
            ]  # fmt: skip
        args += spec.argv
        return Prepared(argv=args, pass_fds=fds + list(spec.pass_fds), cwd=None, uid=uid, cleanup_fds=fds)

    def _prepare_none(self, spec: RunSpec) -> Prepared:
        work = Path(tempfile.mkdtemp(prefix="rlkit-sandbox-"))
        for dest, (content, mode) in spec.files.items():
            path = work / Path(dest).relative_to(WORK_DIR)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            path.chmod(mode)
        binds = dict((dest, src) for src, dest in [*spec.ro_binds, *spec.rw_binds])
        argv = [binds.get(a, _host_path(a, work)) for a in spec.argv]
        env = {**BASE_ENV, **spec.env, "HOME": str(work)}
        prefix = ["/usr/bin/env", "-i"] + [f"{k}={_host_path(v, work)}" for k, v in env.items()]
        argv = prefix + _limits_prefix(spec.limits) + argv
        return Prepared(
            argv=argv, pass_fds=list(spec.pass_fds), cwd=str(work), uid=None, cleanup_fds=[], host_work_dir=work
        )


def _host_path(arg: str, work: Path) -> str:
    """Without isolation the work dir is a host temp dir: rewrite ``/tmp/...`` arguments to it."""
    if arg == WORK_DIR or arg.startswith(WORK_DIR + "/"):
        return str(work) + arg[len(WORK_DIR) :]
    return arg


def _limits_prefix(limits: Limits) -> list[str]:
    return [
        "/bin/sh", "-c", _LIMITS_SCRIPT, "rlkit-limits",
        str(limits.cpu_s), str(limits.memory_mb * 1024), str(limits.nproc),
        str(limits.file_size_mb * 2048), str(limits.open_files),
    ]  # fmt: skip


_PREMOUNTED = ("/usr", WORK_DIR, "/proc", "/dev", "/etc")


def _parent_dirs(dest: str, made: set[str]) -> list[str]:
    """``--dir`` ops creating ``dest``'s missing parents world-readable (bwrap would make them 0700)."""
    args = []
    parent = Path(dest).parent
    for p in reversed([parent, *parent.parents]):
        path = str(p)
        if path == "/" or path in made or any(path == m or path.startswith(m + "/") for m in _PREMOUNTED):
            continue
        made.add(path)
        args += ["--perms", "0755", "--dir", path]
    return args


def _root_filesystem() -> list[str]:
    """Read-only /usr, the top-level links or dirs into it, and the loader files of /etc."""
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    args += ["--perms", "0755", "--dir", "/etc"]
    for name in ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives"):
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    return args


@functools.cache
def _bwrap_version(path: str) -> tuple[int, ...]:
    """``bwrap --version`` as numbers, e.g. (0, 8, 0); (0,) when it cannot be read."""
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10, env={}).stdout
        return tuple(int(part) for part in out.split()[-1].split("."))
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return (0,)


def memfd(content: bytes) -> int:
    """An anonymous in-memory file holding ``content``, offset 0 (close-on-exec; list it in pass_fds)."""
    fd = os.memfd_create("rlkit-sandbox", os.MFD_CLOEXEC)
    view = memoryview(content)
    while view:
        view = view[os.write(fd, view) :]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def random_uid() -> int:
    """A fresh uid per run: RLIMIT_NPROC counts per uid, so concurrent runs never share a count."""
    return _UID_RANGE[0] + secrets.randbelow(_UID_RANGE[1] - _UID_RANGE[0])
