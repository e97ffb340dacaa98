"""Judge one Lean REPL reply: is the proof complete, honest and checked by the kernel?

A reply is ok only if all hold (see ``tests/fixtures/lean/README.md``):

1. it is a JSON object without a top-level ``"message"`` (a REPL-level error);
2. no message has severity ``error`` (this includes heartbeat and recursion limits);
3. ``sorries`` is absent or empty, and no message says the declaration uses sorry
   (``'sorry'`` up to Lean v4.27, ``\\`sorry\\``` from v4.28);
4. ``proofStatus``, where present (tactic mode, REPL >= v4.19), is exactly
   ``Completed``; a tactic reply without it cannot be judged complete;
5. every ``#print axioms`` line lists only ``propext``, ``Classical.choice``,
   ``Quot.sound`` (or none), and with ``theorem_name`` one such line names exactly it.

Warnings other than sorry, info messages and traces never make a reply not ok.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

STANDARD_AXIOMS = frozenset({"propext", "Classical.choice", "Quot.sound"})

Status = Literal[
    "ok", "refused", "repl_error", "error", "sorry", "incomplete", "axioms",
    "bad_reply", "timeout", "crash", "memory", "unavailable",
]  # fmt: skip

_SORRY_WARNING = re.compile(r"declaration uses ['`]sorry['`]")
_DEPENDS = re.compile(r"'(?P<name>.+)' depends on axioms: \[(?P<axioms>[^\]]*)\]", re.DOTALL)
_NO_AXIOMS = re.compile(r"'(?P<name>.+)' does not depend on any axioms", re.DOTALL)


@dataclass(frozen=True)
class Verdict:
    """``ok`` with an empty ``reason``, or not ok with ``status`` and a non-empty ``reason``.

    ``feedback`` is the Lean messages as text (``line:col: severity: text``), for
    verifier-feedback turns; ``time_s`` is the REPL round trip when one happened.
    """

    ok: bool
    status: Status
    reason: str = ""
    feedback: str = ""
    messages: tuple[dict[str, Any], ...] = field(default=(), repr=False)
    time_s: float | None = None

    def __post_init__(self) -> None:
        if self.ok != (self.status == "ok"):
            raise ValueError(f"Verdict ok={self.ok} contradicts status {self.status!r}")
        if not self.ok and not self.reason:
            raise ValueError("a Verdict that is not ok needs a reason")


def failure(status: Status, reason: str, *, feedback: str = "", time_s: float | None = None) -> Verdict:
    """A not-ok verdict that did not come from judging a reply (refused, timeout, crash...)."""
    return Verdict(ok=False, status=status, reason=reason, feedback=feedback or reason, time_s=time_s)


def verdict_from_response(response: Any, *, theorem_name: str | None = None) -> Verdict:
    """The verdict on the REPL's reply to header + statement + proof + ``#print axioms <name>``."""
    if not isinstance(response, dict):
        return failure("bad_reply", f"the REPL reply is not a JSON object: {_short(repr(response))}")
    if "message" in response:
        text = str(response["message"])
        return failure("repl_error", f"REPL error: {_short(text)}", feedback=text)
    messages = response.get("messages") or []
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        return failure("bad_reply", f"the reply's 'messages' is not a list of objects: {_short(repr(messages))}")
    feedback = format_messages(messages)

    def bad(status: Status, reason: str) -> Verdict:
        return Verdict(ok=False, status=status, reason=reason, feedback=feedback, messages=tuple(messages))

    errors = [m for m in messages if m.get("severity") == "error"]
    if errors:
        return bad("error", f"Lean error: {_short(_first_line(errors[0]))}")
    if response.get("sorries"):
        return bad("sorry", "the proof contains sorry")
    if any(_SORRY_WARNING.search(str(m.get("data", ""))) for m in messages):
        return bad("sorry", "Lean reports that the declaration uses sorry")
    if "proofStatus" in response:
        if response["proofStatus"] != "Completed":
            return bad("incomplete", f"proofStatus is not Completed: {_short(str(response['proofStatus']))}")
    elif "goals" in response or "proofState" in response:
        goals = response.get("goals") or []
        reason = f"{len(goals)} goals remain" if goals else "this REPL reports no proofStatus (Lean < v4.19)"
        return bad("incomplete", f"tactic proof not known to be complete: {reason}")
    seen: list[str] = []
    for message in messages:
        data = str(message.get("data", "")).strip()
        depends, none = _DEPENDS.fullmatch(data), _NO_AXIOMS.fullmatch(data)
        if depends:
            axioms = [a.strip() for a in depends["axioms"].split(",") if a.strip()]
            extra = [a for a in axioms if a not in STANDARD_AXIOMS]
            if extra:
                return bad("axioms", f"'{depends['name']}' depends on non-standard axioms: {', '.join(extra)}")
            seen.append(depends["name"])
        elif none:
            seen.append(none["name"])
    if theorem_name is not None and theorem_name not in seen:
        found = f" (found: {', '.join(seen)})" if seen else ""
        return bad("axioms", f"no '#print axioms' line for '{theorem_name}'{found}")
    return Verdict(ok=True, status="ok", feedback=feedback, messages=tuple(messages))


def format_messages(messages: list[dict[str, Any]]) -> str:
    """Lean messages as ``line:col: severity: text`` lines (what a verifier-feedback turn shows)."""
    lines = []
    for m in messages:
        pos = m.get("pos") if isinstance(m.get("pos"), dict) else {}
        where = f"{pos.get('line', '?')}:{pos.get('column', '?')}"
        lines.append(f"{where}: {m.get('severity', 'info')}: {m.get('data', '')}")
    return "\n".join(lines)


def _first_line(message: dict[str, Any]) -> str:
    return str(message.get("data", "")).strip().split("\n", 1)[0]


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
