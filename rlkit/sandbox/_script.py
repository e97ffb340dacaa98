"""Run a Python program the way ``python -I PROGRAM`` does, in an interpreter that is already up.

    main(["_script.py", "/tmp/main.py"])

Used INSIDE the sandbox by the fork server (`_zygote`), in the forked
process of one run, so the program does not pay for an interpreter start.
Standard library only. What ``python -I`` would do and this does too:
``site`` (site-packages and their ``.pth`` files, no user site), a fresh
``__main__`` module with ``__file__``, ``sys.argv``, the traceback of an
uncaught exception (without this file's frame) and exit status 1,
``SystemExit`` codes, death by SIGINT on an uncaught KeyboardInterrupt,
joining non-daemon threads, ``atexit`` handlers, flushing the streams.
"""

import builtins
import os
import signal
import sys
import traceback
import types


def main(argv):
    path = argv[1]
    sys.argv = argv[1:]
    import site

    site.main()  # -S kept it from running in the server; -I keeps the user site out
    with open(path, "rb") as f:
        source = f.read()
    module = types.ModuleType("__main__")
    module.__file__ = path
    module.__builtins__ = builtins
    sys.modules["__main__"] = module
    try:
        text = _source_text(source, path)
    except SyntaxError as e:
        traceback.print_exception(type(e), e, None)
        os._exit(_finish(1))
    status = 0
    try:
        exec(compile(text, path, "exec"), module.__dict__)
    except SystemExit as e:
        status = _exit_status(e)
    except KeyboardInterrupt as e:
        traceback.print_exception(type(e), e, e.__traceback__.tb_next)
        _finish()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    except BaseException as e:  # noqa: B036 - an uncaught exception ends the program, as in python
        traceback.print_exception(type(e), e, e.__traceback__.tb_next)
        status = 1
    os._exit(_finish(status))


def _source_text(source, path):
    """The source as python reads a file: UTF-8 (BOM allowed) unless a PEP 263 cookie says otherwise."""
    if b"coding" in b"\n".join(source.splitlines()[:2]):
        return source  # compile() honours the cookie
    try:
        return source.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = source[: e.start].count(b"\n") + 1
        raise SyntaxError(
            "Non-UTF-8 code starting with '\\x%02x' in file %s on line %d, but no encoding declared; "
            "see https://peps.python.org/pep-0263/ for details" % (source[e.start], path, line)
        ) from None


def _finish(status=0):
    """What interpreter shutdown does before exiting: threads, atexit, streams."""
    threading = sys.modules.get("threading")
    try:
        if threading is not None:
            threading._shutdown()
        import atexit

        atexit._run_exitfuncs()
    except SystemExit as e:
        status = _exit_status(e)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: B036 - the program may have closed or replaced the streams
            status = status or 120
    return status


def _exit_status(e):
    code = e.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    try:
        print(code, file=sys.stderr)
    except BaseException:  # noqa: B036
        pass
    return 1
