"""`LeanChecker`: a pool of REPL sessions that turns (statement, proof) into a Verdict.

```python
checker = LeanChecker(repl_cmd=["lake", "env", "../repl/.lake/build/bin/repl"],
                      cwd="/srv/mathlib-project", header="import Mathlib", timeout_s=60, workers=4)
v = checker.check("  norm_num", statement="theorem t : Nat.gcd 180 168 = 12 := by")
v.ok, v.status, v.reason, v.feedback
```

The source sent after the header is the statement, the proof and
``#print axioms <theorem>``; proof text is prechecked first. Each session keeps
the header environment loaded; a session whose REPL times out, crashes or goes
over its memory cap is restarted and the proof gets a timeout/crash/memory verdict.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from rlkit.rewards.lean.precheck import build_command, precheck, strip_trailing_sorry, theorem_name_of
from rlkit.rewards.lean.process import Launcher, LaunchSpec, get_launcher
from rlkit.rewards.lean.repl import LeanStartError, ReplSession
from rlkit.rewards.lean.verdict import Verdict, failure, verdict_from_response
from rlkit.rewards.lean.whole_file import MODES, build_file_command, check_file, drop_header_imports

MAX_STATEMENT_CHARS = 20_000


class LeanChecker:
    """Checks proofs with ``workers`` REPL processes started by ``launcher`` ("local", "sandbox").

    ``timeout_s`` bounds each proof, ``startup_timeout_s`` the header load;
    ``memory_mb`` caps a REPL's memory; after ``max_uses`` proofs a REPL is recycled.
    Sessions start lazily; ``start()`` starts them all now and raises LeanStartError.
    """

    def __init__(
        self,
        *,
        repl_cmd: Sequence[str],
        cwd: str | os.PathLike[str] | None = None,
        header: str = "",
        timeout_s: float = 60.0,
        workers: int = 1,
        memory_mb: int | None = None,
        startup_timeout_s: float = 600.0,
        max_uses: int = 200,
        launcher: str | Launcher = "local",
        ro_binds: Sequence[str] = (),
    ) -> None:
        if isinstance(repl_cmd, str) or not repl_cmd:
            raise ValueError(f"repl_cmd must be a non-empty list of arguments, got {repl_cmd!r}")
        if workers < 1 or timeout_s <= 0 or max_uses < 1:
            raise ValueError(f"need workers >= 1, timeout_s > 0, max_uses >= 1; got {workers}, {timeout_s}, {max_uses}")
        launch = get_launcher(launcher) if isinstance(launcher, str) else launcher
        spec = LaunchSpec(
            argv=tuple(repl_cmd),
            cwd=os.fspath(cwd) if cwd is not None else None,
            memory_mb=memory_mb,
            ro_binds=tuple(ro_binds),
            cpu_time_s=startup_timeout_s + max_uses * timeout_s,
        )
        self.header = header
        self.sessions = [
            ReplSession(
                launch=launch, spec=spec, header=header, timeout_s=timeout_s,
                startup_timeout_s=startup_timeout_s, max_uses=max_uses,
            )
            for _ in range(workers)
        ]  # fmt: skip
        self._idle: queue.SimpleQueue[ReplSession] = queue.SimpleQueue()
        for session in self.sessions:
            self._idle.put(session)
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._closed = False

    def start(self) -> None:
        """Start every session and load the header now; LeanStartError if one cannot."""
        for session in self.sessions:
            session.start()

    def check(self, proof: str, *, statement: str, theorem_name: str | None = None, mode: str = "proof") -> Verdict:
        """The verdict on ``proof`` for ``statement`` (``theorem_name`` defaults to the declared name).

        ``mode="file"``: ``proof`` is a whole Lean file with the theorem and helper declarations
        (:mod:`rlkit.rewards.lean.whole_file`); ``"proof"``: the proof text after the statement.
        """
        if mode not in MODES:
            raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
        if len(statement) > MAX_STATEMENT_CHARS:
            return failure("refused", f"the statement is {len(statement)} characters (limit {MAX_STATEMENT_CHARS})")
        statement = strip_trailing_sorry(statement)
        name = theorem_name or theorem_name_of(statement)
        if name is None:
            return failure("refused", "the statement declares no theorem name to check with #print axioms")
        if mode == "file":
            file = drop_header_imports(proof, self.header) if isinstance(proof, str) else proof
            refused = check_file(file, statement=statement, theorem_name=name)
            source = build_file_command(file, theorem_name=name) if refused is None else ""
        else:
            refused = precheck(proof)
            source = build_command(statement, proof, theorem_name=name) if refused is None else ""
        if refused is not None:
            return failure("refused", f"proof refused before Lean: {refused}")
        try:
            source.encode("utf-8")
        except UnicodeEncodeError:
            return failure("refused", "the statement is not valid Unicode text (lone surrogates)")
        session = self._acquire()
        try:
            reply = session.command(source)
        except LeanStartError as e:
            return failure("unavailable", str(e))
        finally:
            self._idle.put(session)
        if reply.response is None:
            status = "crash" if reply.failure == "bad_reply" else reply.failure
            return failure(status, reply.detail, time_s=reply.time_s)  # type: ignore[arg-type]
        verdict = verdict_from_response(reply.response, theorem_name=name)
        return Verdict(
            ok=verdict.ok, status=verdict.status, reason=verdict.reason, feedback=verdict.feedback,
            messages=verdict.messages, time_s=reply.time_s,
        )  # fmt: skip

    def check_many(self, items: Sequence[tuple[str, str]], *, mode: str = "proof") -> list[Verdict]:
        """Verdicts for ``(statement, proof)`` pairs, checked concurrently on the sessions, in order."""
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(len(self.sessions), thread_name_prefix="rlkit-lean")
        futures = [self._executor.submit(self.check, proof, statement=stmt, mode=mode) for stmt, proof in items]
        return [f.result() for f in futures]

    def close(self) -> None:
        """Stop every REPL process."""
        with self._lock:
            self._closed = True
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None
        for session in self.sessions:
            session.close()

    def __enter__(self) -> LeanChecker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _acquire(self) -> ReplSession:
        if self._closed:
            raise RuntimeError("the LeanChecker is closed")
        return self._idle.get()
