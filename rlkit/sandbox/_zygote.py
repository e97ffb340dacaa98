"""Fork server; runs INSIDE the sandbox (standard library only, Python 3.8+).

    python -I -S _zygote.py CONTROL_FD [MAIN_PATH ...]

bubblewrap starts this process once, as the sandbox's root holding only
CAP_SETUID, CAP_SETGID and CAP_SETPCAP, already inside its namespaces (no
network, own PID/IPC/UTS/mount namespaces, read-only root, size-limited
tmpfs work dir), with seccomp on and no_new_privs set. It then runs one
program after another, so each run skips starting a sandbox and an
interpreter. Per request (a JSON message plus descriptors on the
SOCK_SEQPACKET control socket):

1. Write the run's files into the work dir (root-owned, read-only to the program).
2. Fork. The child moves the received descriptors to 0, 1, 2, 3, ... and
   closes every other one, starts a new session, raises its OOM score to
   the maximum, sets the run's rlimits, empties the capability bounding and
   inheritable sets, locks the securebits, drops to the run's fresh
   unprivileged uid/gid with no supplementary groups (which clears every
   remaining capability; it checks that none is left) and sets
   no_new_privs. Then it execs the program, or, for a Python main imported
   at start (``MAIN_PATH``: the assert harness, the script runner), calls its
   ``main(argv)`` in this interpreter, whose start-up and common imports are
   already done.
3. Reply ``{"exited": wait status}`` once the child has exited.
4. Clean up: a cleaner forked as the run's uid kills every process of that
   uid and deletes every file it owns under /tmp and /dev/shm; this process
   deletes the run's files. Reply ``{"clean": bool}``: true only when no
   process of the uid is left, /tmp and /dev/shm are empty and no System V
   IPC object exists. The host stops a fork server that is not clean, or
   that a run timed out or overflowed in.

A run cannot reach this process: it runs as another uid (no signals, no
/proc access to a root process), ptrace is blocked by seccomp, and the
next run's input arrives only after this run's processes are gone.
"""

import ctypes
import fcntl
import json
import os
import resource
import signal
import socket
import sys
import time

_PRELOAD = (
    "typing", "math", "re", "collections", "itertools", "functools", "string", "heapq",
    "bisect", "operator", "copy", "dataclasses", "fractions", "decimal", "random", "hashlib",
)  # fmt: skip
_MAX_FDS = 32
_WORK_DIRS = ("/tmp", "/dev/shm")
_PR_CAPBSET_DROP, _PR_SET_SECUREBITS, _PR_SET_NO_NEW_PRIVS, _PR_CAP_AMBIENT = 24, 28, 38, 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
# SECBIT_NOROOT | NOROOT_LOCKED | KEEP_CAPS_LOCKED | NO_CAP_AMBIENT_RAISE | NO_CAP_AMBIENT_RAISE_LOCKED
_SECUREBITS = 0x01 | 0x02 | 0x20 | 0x40 | 0x80
_CAP_VERSION_3 = 0x20080522
_RESTORED_SIGNALS = ("SIGPIPE", "SIGXFSZ", "SIGXCPU")
_KILL_ATTEMPTS = 4000  # x 0.5 ms

_libc = ctypes.CDLL(None, use_errno=True)


def _prctl(option, arg=0):
    if _libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(%d, %d) failed" % (option, arg))


def _clear_inheritable_caps():
    header = (ctypes.c_uint32 * 2)(_CAP_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()
    if _libc.capget(header, data) != 0:
        raise OSError(ctypes.get_errno(), "capget failed")
    data[2] = data[5] = 0  # inheritable words of both 32-bit halves
    if _libc.capset(header, data) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")


def _drop_privileges(uid, egid):
    """Become ``uid`` for good: no capabilities, no groups, no way back."""
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last_cap = int(f.read())
    for cap in range(last_cap + 1):
        _prctl(_PR_CAPBSET_DROP, cap)
    _prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL)
    _clear_inheritable_caps()
    _prctl(_PR_SET_SECUREBITS, _SECUREBITS)
    os.setgroups([])
    os.setresgid(uid, egid, egid)
    os.setresuid(uid, uid, uid)
    _prctl(_PR_SET_NO_NEW_PRIVS, 1)
    with open("/proc/self/status") as f:
        caps = [line.split()[1] for line in f if line.startswith(("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"))]
    if len(caps) != 5 or any(int(c, 16) for c in caps):
        raise OSError("capabilities left after dropping privileges: %s" % caps)


def _set_limits(limits):
    cpu = limits["cpu_s"]
    for name, soft, hard in (
        ("RLIMIT_CPU", cpu, cpu + 1),  # SIGXCPU at the soft limit, SIGKILL a second later
        ("RLIMIT_AS", limits["memory_bytes"], limits["memory_bytes"]),
        ("RLIMIT_NPROC", limits["nproc"], limits["nproc"]),
        ("RLIMIT_FSIZE", limits["file_bytes"], limits["file_bytes"]),
        ("RLIMIT_NOFILE", limits["open_files"], limits["open_files"]),
        ("RLIMIT_CORE", 0, 0),
    ):
        resource.setrlimit(getattr(resource, name), (soft, hard))


def _child(request, fds, mains):
    """The run's process: never returns."""
    try:
        os.setsid()
        targets = request["fds"]
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD, len(targets)) for fd in fds]  # out of the targets' way
        for target, fd in zip(targets, high):
            os.dup2(fd, target)
        os.closerange(len(targets), resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")  # the memory limit's OOM kill picks the run, never this server
        _set_limits(request["limits"])
        _drop_privileges(request["uid"], request["egid"])
        os.chdir(request["cwd"])
        argv, env, main_argv = request["argv"], request["env"], request.get("main_argv")
        main = mains.get(main_argv[0]) if main_argv else None
        if main is not None:
            os.environ.clear()
            os.environ.update(env)
            sys.argv = list(main_argv)
            main.main(sys.argv)
        else:
            for name in _RESTORED_SIGNALS:
                signal.signal(getattr(signal, name), signal.SIG_DFL)
            os.execvpe(argv[0], argv, env)
    except BaseException as e:  # noqa: B036 - report anything, then leave
        try:
            os.write(2, ("rlkit-zygote: %s: %s\n" % (type(e).__name__, e)).encode())
        except OSError:
            pass
    os._exit(126)


def _write_files(files, fds):
    """Write each ``[path, mode]`` from its descriptor; the paths (and new parent dirs) to delete later."""
    written = []
    for (path, mode), fd in zip(files, fds):
        parent = os.path.dirname(path)
        missing = []
        while parent not in _WORK_DIRS and not os.path.isdir(parent):
            missing.append(parent)
            parent = os.path.dirname(parent)
        for d in reversed(missing):
            os.mkdir(d, 0o755)
            written.append(d)
        out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
        written.append(path)
        try:
            size = os.fstat(fd).st_size
            offset = 0
            while offset < size:
                offset += os.sendfile(out, fd, offset, size - offset)
            os.fchmod(out, mode)
        finally:
            os.close(out)
    return written


def _cleanup(uid, written):
    """Kill and delete everything the run left; True when nothing is left."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            if _kill_all_of_this_uid() and all(_remove_owned(d, uid) for d in _WORK_DIRS):
                code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    clean = status == 0
    for path in reversed(written):  # files first, then the directories made for them
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                os.rmdir(path)
            else:
                os.unlink(path)
        except OSError:
            clean = False
    return clean and not any(os.listdir(d) for d in _WORK_DIRS) and _no_ipc_objects()


def _kill_all_of_this_uid():
    """SIGKILL every process of the run until the namespace holds only its init, this server and us.

    ``kill(-1)`` reaches every process this uid may signal: all of the run's,
    none of the server's. Killed processes are reaped by the namespace's init.
    """
    keep = {1, os.getpid(), os.getppid()}
    for _ in range(_KILL_ATTEMPTS):
        try:
            os.kill(-1, signal.SIGKILL)
        except OSError:
            pass
        if not any(int(p) not in keep for p in os.listdir("/proc") if p.isdigit()):
            return True
        time.sleep(0.0005)
    return False


def _remove_owned(directory, uid):
    ok = True
    for entry in os.scandir(directory):
        try:
            if entry.stat(follow_symlinks=False).st_uid == uid:
                _remove_tree(entry.path)
        except OSError:
            ok = False
    return ok


def _remove_tree(path):
    if os.path.isdir(path) and not os.path.islink(path):
        os.chmod(path, 0o700)
        for entry in os.scandir(path):
            _remove_tree(entry.path)
        os.rmdir(path)
    else:
        os.unlink(path)


def _no_ipc_objects():
    for kind in ("shm", "sem", "msg"):
        try:
            with open("/proc/sysvipc/" + kind) as f:
                if len(f.read().splitlines()) > 1:
                    return False
        except FileNotFoundError:
            continue
    return True


def _serve(sock, mains):
    sock.send(json.dumps({"ready": os.getpid()}).encode())
    while True:
        message, fds, _, _ = socket.recv_fds(sock, 1 << 20, _MAX_FDS)
        if not message:
            return  # the host closed the socket
        request = json.loads(message)
        n = len(request["fds"])
        try:
            written = _write_files(request["files"], fds[n:])
        finally:
            for fd in fds[n:]:
                os.close(fd)
        pid = os.fork()
        if pid == 0:
            sock.close()
            _child(request, fds[:n], mains)
        for fd in fds[:n]:
            os.close(fd)
        _, status, usage = os.wait4(pid, 0)
        sock.send(json.dumps({"exited": status, "maxrss": usage.ru_maxrss * 1024}).encode())
        sock.send(json.dumps({"clean": _cleanup(request["uid"], written)}).encode())


def _preload(paths):
    """Import the harness-style mains given on the command line, and common modules programs use."""
    mains = {}
    for path in paths:
        directory, name = os.path.split(path)
        sys.path.insert(0, directory)
        try:
            mains[path] = __import__(name[: -len(".py")])
        finally:
            del sys.path[0]
    for name in _PRELOAD:
        try:
            __import__(name)
        except ImportError:
            pass
    import site  # noqa: F401 - the harness adds site-packages for the program; -S skips running it

    return mains


def main(argv):
    sock = socket.socket(fileno=int(argv[1]))
    mains = _preload(argv[2:])
    _serve(sock, mains)
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv)
