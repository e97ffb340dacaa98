"""``rlkit sandbox``: serve the sandbox over HTTP, run one program, show the isolation.

rlkit sandbox serve --host 127.0.0.1 --port 8790 --max-workers 8
rlkit sandbox run solution.cpp --language cpp --stdin-file in.txt
rlkit sandbox info
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from pathlib import Path

from rlkit.sandbox.limits import Limits
from rlkit.sandbox.sandbox import Sandbox


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rlkit sandbox", description="Isolated execution of untrusted code.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve run/run_tests/run_many over HTTP")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    serve.add_argument("--port", type=int, default=8790, help="TCP port (default: 8790)")
    serve.add_argument("--max-workers", type=int, default=None, help="programs run at once (default: CPU count)")
    serve.add_argument(
        "--token-file", type=Path, default=None, help="file holding a bearer token every request must send"
    )
    _add_sandbox_args(serve)

    run = sub.add_parser("run", help="run one program and print its ExecResult as JSON")
    run.add_argument("file", type=Path, help="source file")
    run.add_argument("--language", default=None, help="python or cpp (default: from the file suffix)")
    run.add_argument("--stdin-file", type=Path, default=None, help="file fed to the program's stdin")
    _add_sandbox_args(run)

    info = sub.add_parser("info", help="print how programs are isolated on this host")
    _add_sandbox_args(info)
    return parser


def _add_sandbox_args(p: argparse.ArgumentParser) -> None:
    defaults = Limits()
    p.add_argument("--time-s", type=float, default=defaults.time_s, help="wall-clock seconds per program")
    p.add_argument("--memory-mb", type=int, default=defaults.memory_mb, help="memory of a program's process tree")
    p.add_argument("--output-kb", type=int, default=defaults.output_kb, help="stdout/stderr kept per program")
    p.add_argument("--nproc", type=int, default=defaults.nproc, help="processes/threads per program")
    p.add_argument("--python", default=None, help="interpreter for Python programs (default: /usr/bin/python3)")
    p.add_argument(
        "--isolation",
        choices=("bwrap", "none"),
        default="bwrap",
        help="'none' runs programs WITHOUT isolation (only rlimits and timeouts); never for untrusted code",
    )


def _sandbox(args: argparse.Namespace) -> Sandbox:
    limits = Limits(time_s=args.time_s, memory_mb=args.memory_mb, output_kb=args.output_kb, nproc=args.nproc)
    return Sandbox(limits=limits, isolation=args.isolation, python=args.python)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``rlkit sandbox``; returns the process exit status."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "run":
            return _run(args)
        print(json.dumps(_sandbox(args).describe(), indent=2))
        return 0
    except (OSError, ValueError, RuntimeError) as e:
        print(f"rlkit sandbox: error: {e}", file=sys.stderr)
        return 2


def _serve(args: argparse.Namespace) -> int:
    from rlkit.sandbox.service import serve

    token = None
    if args.token_file is not None:
        token = args.token_file.read_text().strip()
        if not token:
            raise ValueError(f"token file {args.token_file} is empty")
    if args.host not in ("127.0.0.1", "localhost", "::1") and token is None:
        print("rlkit sandbox: warning: serving beyond loopback without --token-file", file=sys.stderr)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, _interrupt)  # stop like Ctrl-C: finish cleanly, remove the cgroups
    serve(sandbox=_sandbox(args), host=args.host, port=args.port, max_workers=args.max_workers, token=token)
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _run(args: argparse.Namespace) -> int:
    code = args.file.read_text()
    language = args.language or {".cpp": "cpp", ".cc": "cpp", ".cxx": "cpp"}.get(args.file.suffix, "python")
    stdin = args.stdin_file.read_text() if args.stdin_file else ""
    result = _sandbox(args).run(code, language=language, stdin=stdin)
    print(json.dumps(result.to_dict(), indent=2))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
