"""The `lean` reward: 1.0 when Lean accepts the completion's proof of ``sample["statement"]``.

Each reward worker process keeps one :class:`LeanChecker` per parameter set,
started by the setup hook (outside the per-item timeout, since loading Mathlib
takes a while), so the header environment is reused across items and batches.
Proof timeouts and REPL crashes are reported as failures (counted in the
``reward/lean/timeouts`` and ``errors`` metrics); refusals, Lean errors, sorry and
axiom violations are ordinary 0.0 scores with the reason in ``info``.
"""

from __future__ import annotations

import threading
from typing import Literal

from rlkit.rewards.lean.checker import MAX_STATEMENT_CHARS, LeanChecker
from rlkit.rewards.lean.precheck import extract_proof
from rlkit.rewards.lean.whole_file import MODES, extract_file
from rlkit.rewards.pool import FAILURE_KEY
from rlkit.rewards.registry import RewardResult, register_reward
from rlkit.rewards.samples import RewardInputError, require_str

_CHECKERS: dict[tuple, LeanChecker] = {}
_CHECKERS_LOCK = threading.Lock()


def _checker(
    *,
    repl_cmd: list[str],
    cwd: str | None,
    header: str,
    timeout_s: float,
    memory_mb: int | None,
    launcher: Literal["local", "sandbox"],
    max_uses: int,
    ro_binds: tuple[str, ...],
) -> LeanChecker:
    key = (tuple(repl_cmd), cwd, header, timeout_s, memory_mb, launcher, max_uses, tuple(ro_binds))
    with _CHECKERS_LOCK:
        checker = _CHECKERS.get(key)
        if checker is None:
            checker = _CHECKERS[key] = LeanChecker(
                repl_cmd=repl_cmd, cwd=cwd, header=header, timeout_s=timeout_s, workers=1,
                memory_mb=memory_mb, launcher=launcher, max_uses=max_uses, ro_binds=ro_binds,
            )  # fmt: skip
        return checker


def _setup(
    *,
    repl_cmd: list[str],
    cwd: str | None = None,
    header: str = "",
    timeout_s: float = 60.0,
    memory_mb: int | None = None,
    launcher: Literal["local", "sandbox"] = "local",
    max_uses: int = 200,
    ro_binds: tuple[str, ...] = (),
    statement_key: str = "statement",
    theorem_name_key: str = "theorem_name",
    mode: Literal["proof", "file"] = "proof",
) -> None:
    if mode not in MODES:
        raise ValueError(f"reward lean: params.mode must be one of {list(MODES)}, got {mode!r}")
    _checker(
        repl_cmd=repl_cmd, cwd=cwd, header=header, timeout_s=timeout_s, memory_mb=memory_mb,
        launcher=launcher, max_uses=max_uses, ro_binds=ro_binds,
    ).start()  # fmt: skip


@register_reward("lean", setup=_setup)
def lean_reward(
    completion: str,
    sample: dict,
    *,
    repl_cmd: list[str],
    cwd: str | None = None,
    header: str = "",
    timeout_s: float = 60.0,
    memory_mb: int | None = None,
    launcher: Literal["local", "sandbox"] = "local",
    max_uses: int = 200,
    ro_binds: tuple[str, ...] = (),
    statement_key: str = "statement",
    theorem_name_key: str = "theorem_name",
    mode: Literal["proof", "file"] = "proof",
) -> RewardResult:
    """Check the proof in ``completion`` (last ```lean block; a repeated statement is cut off).

    ``mode="file"``: the block is a whole Lean file (helper lemmas, then the theorem with the
    reference statement and its proof), as DeepSeek-Prover-V2, Goedel-Prover and Kimina-Prover
    write it; see :mod:`rlkit.rewards.lean.whole_file`.

    ``repl_cmd`` runs the REPL in ``cwd`` (the Lean project); ``header`` is loaded once per
    REPL; ``launcher="sandbox"`` isolates it, mounting ``cwd`` and ``ro_binds`` read-only.
    """
    statement = require_str(sample, statement_key)
    if len(statement) > MAX_STATEMENT_CHARS:
        limit = MAX_STATEMENT_CHARS
        raise RewardInputError(f"sample[{statement_key!r}] is {len(statement)} characters (limit {limit})")
    name = sample.get(theorem_name_key)
    checker = _checker(
        repl_cmd=repl_cmd, cwd=cwd, header=header, timeout_s=timeout_s, memory_mb=memory_mb,
        launcher=launcher, max_uses=max_uses, ro_binds=ro_binds,
    )  # fmt: skip
    if mode not in MODES:
        raise RewardInputError(f"reward lean: params.mode must be one of {list(MODES)}, got {mode!r}")
    verdict = checker.check(
        extract_file(completion) if mode == "file" else extract_proof(completion, statement=statement),
        statement=statement,
        theorem_name=name if isinstance(name, str) and name else None,
        mode=mode,
    )
    info = {"status": verdict.status, "reason": verdict.reason, "feedback": verdict.feedback}
    if verdict.status in ("timeout", "crash", "memory", "unavailable"):
        return RewardResult(score=0.0, error=verdict.reason, info={**info, FAILURE_KEY: verdict.status})
    return RewardResult(score=float(verdict.ok), info=info)
