"""Languages: how a program is laid out and started inside the sandbox.

Python runs the source with the configured interpreter; C++ is compiled by
``g++`` inside the same isolation (untrusted source can ``#include`` files,
``.incbin`` them or blow up the compiler), the binary comes back over the
compile run's stdout, and each run starts it from the private work dir.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

from rlkit.sandbox.isolation import WORK_DIR, RunSpec
from rlkit.sandbox.limits import Limits
from rlkit.sandbox.process import CHANNEL_FD, INPUT_FDS

Language = Literal["python", "cpp"]
LANGUAGES: tuple[str, ...] = ("python", "cpp")
LANGUAGE_ALIASES = {"python": "python", "python3": "python", "py": "python", "cpp": "cpp", "c++": "cpp", "cxx": "cpp"}

SOURCE_PATHS = {"python": f"{WORK_DIR}/main.py", "cpp": f"{WORK_DIR}/main.cpp"}
BINARY_PATH = f"{WORK_DIR}/main"
HARNESS_DIR = "/.rlkit"
HARNESS_PATH = f"{HARNESS_DIR}/_harness.py"
SCRIPT_RUNNER_PATH = f"{HARNESS_DIR}/_script.py"
# The harness, its wire format and the script runner, bound read-only into the sandbox (host path, sandbox path).
HARNESS_FILES = tuple(
    (str(Path(__file__).with_name(name)), f"{HARNESS_DIR}/{name}") for name in ("_harness.py", "_wire.py", "_script.py")
)


def canonical_language(language: str) -> Language:
    """``language`` by its canonical name; unknown names list the known ones."""
    try:
        return LANGUAGE_ALIASES[language.lower()]  # type: ignore[return-value]
    except (KeyError, AttributeError):
        raise ValueError(f"unsupported language {language!r}; supported: {', '.join(LANGUAGES)}") from None


@dataclass(frozen=True)
class PythonRuntime:
    """The interpreter programs run with, and what the sandbox must bind for it."""

    executable: str
    flags: tuple[str, ...]
    binds: tuple[tuple[str, str], ...]

    @classmethod
    def find(cls, *, executable: str | None, flags: Sequence[str]) -> PythonRuntime:
        """``executable`` (default: the system ``/usr/bin/python3``, else this interpreter), checked."""
        exe = executable or ("/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable)
        try:
            probe = subprocess.run(
                [exe, "-I", "-S", "-c", "import sys; print(sys.base_prefix); print(sys.version_info >= (3, 8))"],
                capture_output=True, text=True, timeout=30, env={}, check=True,
            )  # fmt: skip
        except (OSError, subprocess.SubprocessError) as e:
            raise ValueError(f"sandbox python {exe!r} cannot be run: {e}") from None
        prefix, recent = probe.stdout.split()
        if recent != "True":
            raise ValueError(f"sandbox python {exe!r} is older than 3.8")
        real = os.path.realpath(exe)
        binds: list[tuple[str, str]] = []
        for path in {prefix, os.path.dirname(os.path.dirname(real))}:
            if not path.startswith("/usr/") and path != "/usr":
                binds.append((path, path))
        if not os.path.abspath(exe).startswith("/usr/"):
            binds.append((os.path.dirname(os.path.abspath(exe)), os.path.dirname(os.path.abspath(exe))))
        return cls(executable=exe, flags=tuple(flags), binds=tuple(dict.fromkeys(binds)))

    def script_spec(self, code: str, limits: Limits) -> RunSpec:
        """Run ``code`` as ``__main__`` from a read-only file in the work dir.

        With the default flags (``-I``) a fork server may run it with `_script`
        in its started interpreter, which does what ``python -I`` does.
        """
        path = SOURCE_PATHS["python"]
        return RunSpec(
            argv=[self.executable, *self.flags, path],
            limits=limits,
            files={path: (code.encode("utf-8", "surrogatepass"), 0o444)},
            ro_binds=[*self.binds, *HARNESS_FILES],
            main_argv=[SCRIPT_RUNNER_PATH, path] if self.flags == ("-I",) else None,
        )

    def harness_spec(self, *, limits: Limits) -> RunSpec:
        """Run the assert-mode harness (`rlkit.sandbox._harness`): code and tests arrive on input pipes.

        Always ``-I -S``: the trusted evaluator never loads site-packages; the
        program process adds them to ``sys.path`` itself (without .pth files).
        """
        return RunSpec(
            argv=[self.executable, "-I", "-S", HARNESS_PATH, INPUT_FDS[0], INPUT_FDS[1], CHANNEL_FD],
            limits=limits,
            ro_binds=[*self.binds, *HARNESS_FILES],
            split_gid=True,
            main_argv=[HARNESS_PATH, INPUT_FDS[0], INPUT_FDS[1], CHANNEL_FD],
        )


@dataclass(frozen=True)
class CppToolchain:
    """``g++`` and its flags; compilation runs inside the sandbox under ``compile_limits``."""

    compiler: str
    flags: tuple[str, ...]

    def compile_spec(self, code: str, limits: Limits) -> RunSpec:
        source = SOURCE_PATHS["cpp"]
        # Relative to the work dir (the cwd), so no-isolation mode compiles in its own temp dir.
        src, out = os.path.relpath(source, WORK_DIR), os.path.relpath(BINARY_PATH, WORK_DIR)
        script = f'"$0" "$@" -o {out} {src} && exec cat {out}'
        return RunSpec(
            argv=["/bin/sh", "-c", script, self.compiler, *self.flags],
            limits=limits,
            files={source: (code.encode("utf-8", "surrogatepass"), 0o444)},
        )

    @staticmethod
    def binary_spec(binary: bytes, limits: Limits) -> RunSpec:
        return RunSpec(argv=[BINARY_PATH], limits=limits, files={BINARY_PATH: (binary, 0o555)})
