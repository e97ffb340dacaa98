"""Assert-mode test harness; runs INSIDE the sandbox (standard library only, Python 3.8+).

    python -I -S harness.py CODE_FD TESTS_FD CHANNEL_FD

Two processes, so the program can never decide a verdict:

- The *evaluator* (this process) is out of the program's reach: on root
  hosts the sandbox starts it with an effective gid that differs from its
  real gid, which makes the kernel mark it non-dumpable, and the program
  process drops to the real gid, so it can neither ptrace the evaluator (the
  seccomp filter blocks ptrace anyway) nor open its /proc files (memory,
  descriptors). Elsewhere the evaluator calls prctl(PR_SET_DUMPABLE, 0).
  It forks the *program* process before it reads the tests, so the
  program's memory never holds them.
- The program process closes the tests and result descriptors, runs the
  untrusted code, and then only answers requests: call this function, get
  that attribute, iterate this object.
- The evaluator runs each test snippet itself. The program's functions appear
  in the test's namespace as proxies; every value crossing back is decoded
  from JSON into exact builtin types (None, bool, int, float, complex, str,
  bytes, list, tuple, dict, set, frozenset), and anything else stays an
  opaque proxy that compares equal only to itself and has no arithmetic.
  Comparisons, builtins and modules the tests use are the evaluator's own,
  which the program never touched.
- A test passes only when its snippet runs to completion in the evaluator,
  which then writes ``pass`` for it, with the run's nonce, to the result
  channel (a pipe only the evaluator holds). Exiting early, raising
  SystemExit, printing markers, patching builtins or returning objects with
  a forged ``__eq__`` in the program process cannot produce that line.
"""

import builtins
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _wire import Budget, ProgramDied, decode, dumps, encode, loads  # noqa: E402 - found through the line above

del sys.path[0]
_MAX_MESSAGE = 64 << 20
_GLOBAL_BUDGET = 20000  # JSON nodes per mirrored global before it is sent as a proxy instead
_PR_SET_DUMPABLE, _PR_GET_DUMPABLE = 4, 3


class ProgramError(Exception):
    """The program raised an exception that is not a builtin one."""


# ---------------------------------------------------------------- program side


def _program_side(code_fd, req_r, rep_w):
    with os.fdopen(code_fd, "rb") as f:
        code = f.read().decode("utf-8", "replace")
    requests = os.fdopen(req_r, "rb")
    replies = os.fdopen(rep_w, "wb")
    objects = {}

    def handle(value):
        key = len(objects) + 1
        objects[key] = value
        out = {"h": key, "n": type(value).__name__}
        if type(value) is type(os):
            out["m"] = value.__name__
        return out

    def send(message):
        _flush_output()  # what the program printed so far reaches the run's stdout/stderr
        replies.write(dumps(message).encode() + b"\n")
        replies.flush()

    _site_paths()
    namespace = {"__name__": "solution", "__builtins__": builtins}
    try:
        exec(compile(code, "<solution>", "exec"), namespace)
    except BaseException as e:  # noqa: B036 - the program may raise anything, SystemExit included
        send({"load_error": _describe(e)})
        os._exit(0)
    names = []
    for name, value in list(namespace.items()):
        if name.startswith("__"):
            continue
        try:
            names.append([name, encode(value, handle, [_GLOBAL_BUDGET])])
        except (Budget, RecursionError):
            names.append([name, handle(value)])
    send({"loaded": names})
    for line in requests:
        try:
            request = loads(line)
            send(_serve(request, objects, handle))
        except BaseException as e:  # noqa: B036
            try:
                send({"x": _describe(e)})
            except BaseException:  # noqa: B036
                os._exit(1)
    os._exit(0)


def _flush_output():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: B036 - the program may have replaced the streams
            pass


def _site_paths():
    """What ``site`` gives a program (site-packages on sys.path, ``exit``/``quit``), minus .pth files.

    The harness runs with ``-S`` so the evaluator starts fast and never imports third-party code.
    """
    if "site" in sys.modules and sys.flags.no_site == 0:
        return
    import site

    for path in site.getsitepackages():
        if path not in sys.path and os.path.isdir(path):
            sys.path.append(path)
    site.setquit()


def _serve(request, objects, handle):
    def local(key, name):
        return objects[key]

    target = objects[request["h"]]
    op = request["op"]
    if op == "call":
        args = [decode(a, local) for a in request["a"]]
        kwargs = {k: decode(v, local) for k, v in request["k"]}
        result = target(*args, **kwargs)
        mutable = (list, dict, set, bytearray)
        after = [encode(a, handle) if type(a) in mutable else None for a in args]
        return {"v": encode(result, handle), "a": after}
    if op == "getattr":
        return {"v": encode(getattr(target, request["name"]), handle)}
    if op == "getitem":
        return {"v": encode(target[decode(request["key"], local)], handle)}
    if op == "iter":
        return {"v": handle(iter(target))}
    if op == "next":
        try:
            return {"v": encode(next(target), handle)}
        except StopIteration:
            return {"stop": True}
    if op == "len":
        return {"v": len(target)}
    if op == "bool":
        return {"v": bool(target)}
    if op in ("str", "repr"):
        return {"v": (str if op == "str" else repr)(target)}
    raise ValueError("unknown request %r" % (op,))


def _describe(e):
    return {
        "type": type(e).__name__,
        "msg": _short(str(e)),
        "builtin": type(e) is getattr(builtins, type(e).__name__, None),
    }


def _short(text, limit=500):
    return text if len(text) <= limit else text[:limit] + "..."


# ---------------------------------------------------------------- evaluator side


class _Connection:
    def __init__(self, req_w, rep_r):
        self.requests = os.fdopen(req_w, "wb")
        self.replies = os.fdopen(rep_r, "rb")

    def receive(self):
        line = self.replies.readline(_MAX_MESSAGE)
        if not line.endswith(b"\n"):
            raise ProgramDied("the program process exited" if not line else "oversized reply from the program")
        try:
            return loads(line)
        except ValueError:
            raise ProgramDied("unreadable reply from the program") from None

    def request(self, op, key, **fields):
        message = dict(fields, op=op, h=key)
        try:
            self.requests.write(dumps(message).encode() + b"\n")
            self.requests.flush()
        except OSError:
            raise ProgramDied("the program process exited") from None
        reply = self.receive()
        if type(reply) is not dict:
            raise ProgramDied("malformed reply from the program")
        if "x" in reply:
            raise _exception(reply["x"])
        if reply.get("stop") is True:
            raise StopIteration
        if "v" not in reply:
            raise ProgramDied("malformed reply from the program")
        return reply

    def value(self, op, key, **fields):
        return decode(self.request(op, key, **fields)["v"], self.remote)

    def remote(self, key, name):
        return Remote(self, key, name)


def _exception(info):
    if type(info) is not dict:
        return ProgramDied("malformed exception from the program")
    name, msg = str(info.get("type")), str(info.get("msg"))
    cls = getattr(builtins, name, None)
    if info.get("builtin") is True and isinstance(cls, type) and issubclass(cls, Exception):
        return cls(msg)
    return ProgramError("%s: %s" % (name, msg))


class Remote:
    """An object living in the program process: callable and iterable, never equal to a value."""

    __slots__ = ("_conn", "_key", "_name")

    def __init__(self, conn, key, name):
        object.__setattr__(self, "_conn", conn)
        object.__setattr__(self, "_key", key)
        object.__setattr__(self, "_name", name)

    def __call__(self, *args, **kwargs):
        conn = self._conn
        reply = conn.request(
            "call",
            self._key,
            a=[encode(a, _handle_of) for a in args],
            k=[[k, encode(v, _handle_of)] for k, v in kwargs.items()],
        )
        after = reply.get("a")
        if type(after) is list and len(after) == len(args):
            for original, new in zip(args, after):
                if new is not None and type(original) in (list, dict, set, bytearray):
                    _copy_back(original, decode(new, conn.remote))
        return decode(reply["v"], conn.remote)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return self._conn.value("getattr", self._key, name=name)

    def __setattr__(self, name, value):
        raise AttributeError("objects of the program under test are read-only in tests")

    def __getitem__(self, key):
        return self._conn.value("getitem", self._key, key=encode(key, _handle_of))

    def __iter__(self):
        return _RemoteIterator(self._conn, self._conn.value("iter", self._key))

    def __len__(self):
        return _typed(self._conn.value("len", self._key), int, "len()")

    def __bool__(self):
        return _typed(self._conn.value("bool", self._key), bool, "bool()")

    def __str__(self):
        return _typed(self._conn.value("str", self._key), str, "str()")

    def __repr__(self):
        return "<program %s object>" % self._name


class _RemoteIterator:
    __slots__ = ("_conn", "_it")

    def __init__(self, conn, it):
        self._conn = conn
        self._it = it

    def __iter__(self):
        return self

    def __next__(self):
        return self._conn.value("next", self._it._key)


def _handle_of(value):
    if type(value) is Remote:
        return {"h": value._key}
    raise TypeError("a %s cannot be passed to the program under test" % type(value).__name__)


def _typed(value, kind, what):
    if type(value) is not kind:
        raise TypeError("%s of a program object returned %s" % (what, type(value).__name__))
    return value


def _copy_back(original, new):
    if type(new) is not type(original):
        return
    if type(original) is dict or type(original) is set:
        original.clear()
        original.update(new)
    else:
        original[:] = new


def _evaluator_side(tests_fd, chan_fd, req_w, rep_r):
    with os.fdopen(tests_fd, "rb") as f:
        job = loads(f.read())
    nonce = job["nonce"]
    channel = os.fdopen(chan_fd, "wb")

    def report(event, **fields):
        fields.update(event=event, nonce=nonce)
        channel.write(dumps(fields).encode() + b"\n")
        channel.flush()

    report("ready")
    conn = _Connection(req_w, rep_r)
    try:
        first = conn.receive()
    except ProgramDied as e:
        report("load_error", message="the program exited before its code finished loading (%s)" % e)
        return
    if type(first) is not dict or ("loaded" not in first and "load_error" not in first):
        report("load_error", message="malformed message from the program")
        return
    if "load_error" in first:
        err = first["load_error"]
        report("load_error", message="%s: %s" % (err.get("type"), err.get("msg")) if type(err) is dict else "error")
        return
    mirror = {}
    for item in first["loaded"]:
        try:
            mirror[str(item[0])] = decode(item[1], conn.remote)
        except Exception:  # a global the tests cannot see, e.g. a module we do not mirror
            continue
    report("loaded")
    for index, source in enumerate(job["tests"]):
        report("start", index=index)
        started = time.perf_counter()
        namespace = dict(mirror, __name__="__main__", __builtins__=builtins)
        try:
            exec(compile(source, "<test %d>" % index, "exec"), namespace)
        except ProgramDied as e:
            report(
                "result",
                index=index,
                status="error",
                message="ProgramDied: %s" % e,
                time_s=time.perf_counter() - started,
            )
            return
        except BaseException as e:  # noqa: B036 - a test fails on anything, SystemExit included
            status = "failed" if type(e) is AssertionError else "error"
            report(
                "result", index=index, status=status, message=_failure(e, source), time_s=time.perf_counter() - started
            )
            if job["stop_on_first_failure"]:
                return
            continue
        report("result", index=index, status="passed", message="", time_s=time.perf_counter() - started)
    report("done")


def _failure(e, source):
    where = ""
    tb = e.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.startswith("<test "):
            lines = source.splitlines()
            if 0 < tb.tb_lineno <= len(lines):
                where = " at line %d: %s" % (tb.tb_lineno, lines[tb.tb_lineno - 1].strip())
        tb = tb.tb_next
    text = str(e)
    return _short("%s%s%s" % (type(e).__name__, ": " + text if text else "", where))


def _protect_evaluator():
    """Keep the program process out of this one's memory and descriptors (see the module doc)."""
    real, effective, _ = os.getresgid()
    if real != effective:  # started non-dumpable, with a gid the program process will give up
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0 or libc.prctl(_PR_GET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")


def main(argv):
    code_fd, tests_fd, chan_fd = (int(a) for a in argv[1:4])
    _protect_evaluator()
    req_r, req_w = os.pipe()
    rep_r, rep_w = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            for fd in (tests_fd, chan_fd, req_w, rep_r):
                os.close(fd)
            real_gid = os.getresgid()[0]
            os.setresgid(real_gid, real_gid, real_gid)
            _program_side(code_fd, req_r, rep_w)
        finally:
            os._exit(1)
    for fd in (code_fd, req_r, rep_w):
        os.close(fd)
    status = 1
    try:
        _evaluator_side(tests_fd, chan_fd, req_w, rep_r)
        status = 0
    finally:
        try:
            os.kill(child, 9)
        except OSError:
            pass
        _flush_output()
        os._exit(status)  # skip interpreter teardown


if __name__ == "__main__":
    main(sys.argv)
