"""The Lean 4 proof checker: precheck, REPL sessions, verdicts, and the `lean` reward.

```python
from rlkit.rewards.lean import LeanChecker, precheck, verdict_from_response
reason = precheck(proof)                       # None, or why it is refused before Lean runs
v = verdict_from_response(reply, theorem_name="t")   # .ok, .status, .reason, .feedback
```
"""

from rlkit.rewards.lean import reward as _reward  # noqa: F401  (registers the `lean` reward)
from rlkit.rewards.lean.checker import LeanChecker
from rlkit.rewards.lean.precheck import build_command, extract_proof, precheck, theorem_name_of
from rlkit.rewards.lean.process import LaunchSpec, LocalProcess, ReplProcess, get_launcher, register_launcher
from rlkit.rewards.lean.repl import LeanStartError, ReplSession, Reply
from rlkit.rewards.lean.verdict import STANDARD_AXIOMS, Verdict, format_messages, verdict_from_response
from rlkit.rewards.lean.whole_file import build_file_command, check_file, extract_file, normalize_statement

__all__ = [
    "STANDARD_AXIOMS",
    "LaunchSpec",
    "LeanChecker",
    "LeanStartError",
    "LocalProcess",
    "ReplProcess",
    "ReplSession",
    "Reply",
    "Verdict",
    "build_command",
    "build_file_command",
    "check_file",
    "extract_file",
    "extract_proof",
    "format_messages",
    "get_launcher",
    "normalize_statement",
    "precheck",
    "register_launcher",
    "theorem_name_of",
    "verdict_from_response",
]
