"""``lean_feedback``: verifier-feedback turns as in Leanabell-Prover-V2 (arXiv 2507.08649).

The model writes a proof of ``sample[statement_key]``; the Lean checker's verdict comes back: when
Lean rejects it, its messages (``line:col: severity: text``) are the observation (a user turn
through the chat renderer, masked) and the model revises, up to ``env.max_turns`` proofs. The
trajectory's reward is the final verdict (1.0 accepted, else 0.0). Checkers are shared per
parameter set within a process, as the ``lean`` reward's are.
"""

from __future__ import annotations

import threading

from rlkit.envs.base import Environment, StepResult, register_env
from rlkit.rewards.lean.checker import LeanChecker
from rlkit.rewards.lean.precheck import extract_proof

_CHECKERS: dict[tuple, LeanChecker] = {}
_LOCK = threading.Lock()

FEEDBACK = "Lean rejected the proof:\n{feedback}\nWrite a corrected proof in a ```lean block."


@register_env("lean_feedback")
class LeanFeedbackEnv(Environment):
    def __init__(
        self, *, repl_cmd: list[str], header: str = "", cwd: str | None = None, timeout_s: float = 60.0,
        statement_key: str = "statement", theorem_name_key: str = "theorem_name", feedback_template: str = FEEDBACK,
    ) -> None:  # fmt: skip
        key = (tuple(repl_cmd), header, cwd, timeout_s)
        with _LOCK:
            if key not in _CHECKERS:
                _CHECKERS[key] = LeanChecker(repl_cmd=repl_cmd, header=header, cwd=cwd, timeout_s=timeout_s)
            self.checker = _CHECKERS[key]
        self.statement_key, self.theorem_name_key = statement_key, theorem_name_key
        self.template = feedback_template
        self.statement: str | None = None
        self.theorem_name: str | None = None

    def reset(self, sample: dict) -> None:
        statement = sample.get(self.statement_key)
        if not isinstance(statement, str) or not statement:
            raise ValueError(f"lean_feedback: row {sample.get('id', '?')}: field {self.statement_key!r} must be a non-empty string")
        name = sample.get(self.theorem_name_key)
        self.statement, self.theorem_name = statement, name if isinstance(name, str) and name else None
        return None

    def step(self, action: str) -> StepResult:
        proof = extract_proof(action, statement=self.statement)
        verdict = self.checker.check(proof, statement=self.statement, theorem_name=self.theorem_name)
        info = {"verdict": verdict.status, "reason": verdict.reason}
        if verdict.ok:
            return StepResult(done=True, reward=1.0, info=info)
        return StepResult(observation=self.template.format(feedback=verdict.feedback), reward=0.0, info=info)

    def fork(self) -> "LeanFeedbackEnv":
        twin = object.__new__(LeanFeedbackEnv)
        twin.__dict__.update(self.__dict__)  # the checker is shared, the rest is immutable text
        return twin


def close_checkers() -> None:
    with _LOCK:
        for checker in _CHECKERS.values():
            checker.close()
        _CHECKERS.clear()
