"""`code_tests`: run the program in a completion against the sample's tests in the sandbox.

The program is a fenced code block of the completion (``extract``: the last
block, the first, the longest, or ``whole`` for the raw completion); blocks
tagged with the sample's language (or untagged) are preferred over others.
``prefix_key`` names a sample field prepended to it (HumanEval prompts whose
completion is only the function body).

Tests come from ``sample[tests_key]``:

- a list of Python snippets (``assert f(1) == 2``, ``check(f)``): assert mode,
  Python only; each snippet is one case;
- a list of ``{"input": str, "output": str}``: stdio mode, any language;
- HumanEval rows (``test`` holding ``def check(candidate)`` and ``entry_point``)
  become the single case ``check(<entry_point>)``.

The score is 1.0 when every case passes (``scoring="all"``) or the fraction
passed (``scoring="fraction"``). Per-case outcomes go into ``info["cases"]``.
A failure of the sandbox itself is reported as ``error`` with score 0.
One `Sandbox` (or `SandboxClient`, with ``sandbox_url``) is shared per process.
"""

from __future__ import annotations

import re
import threading
from typing import Any, Literal

from rlkit.rewards.registry import RewardResult, register_reward
from rlkit.rewards.samples import RewardInputError, require_field
from rlkit.sandbox import Limits, Sandbox, SandboxClient
from rlkit.sandbox.languages import LANGUAGE_ALIASES, canonical_language
from rlkit.sandbox.results import TestReport

Extract = Literal["last_block", "first_block", "longest_block", "whole"]
Scoring = Literal["all", "fraction"]

_FENCE = re.compile(r"^[ \t]*```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)^[ \t]*```", re.DOTALL | re.MULTILINE)
_MESSAGE_CHARS = 300
_lock = threading.Lock()
_sandboxes: dict[tuple[str, str | None], Sandbox | SandboxClient] = {}


def shared_sandbox(
    *, isolation: Literal["bwrap", "none"] = "bwrap", sandbox_url: str | None = None
) -> Sandbox | SandboxClient:
    """This process's sandbox for ``isolation`` (or client of the service at ``sandbox_url``)."""
    key = (isolation, sandbox_url)
    with _lock:
        if key not in _sandboxes:
            _sandboxes[key] = SandboxClient(sandbox_url) if sandbox_url else Sandbox(isolation=isolation)
        return _sandboxes[key]


def extract_program(completion: str, *, language: str, extract: Extract = "last_block") -> str | None:
    """The program in ``completion``; None when ``extract`` asks for a block and there is none."""
    if extract == "whole":
        return completion
    blocks = [(tag.lower(), body) for tag, body in _FENCE.findall(completion)]
    if not blocks:
        return None
    wanted = canonical_language(language)
    matching = [b for t, b in blocks if not t or LANGUAGE_ALIASES.get(t) == wanted]
    bodies = matching or [b for _, b in blocks]
    if extract == "first_block":
        return bodies[0]
    if extract == "longest_block":
        return max(bodies, key=len)
    if extract == "last_block":
        return bodies[-1]
    raise ValueError(f"extract must be one of last_block, first_block, longest_block, whole; got {extract!r}")


def sample_tests(sample: dict, *, tests_key: str = "tests") -> tuple[list[Any], Literal["assert", "stdio"]]:
    """The sample's test cases and their mode; RewardInputError when they are missing or mixed."""
    if tests_key not in sample and "test" in sample and "entry_point" in sample:
        test, entry = sample["test"], sample["entry_point"]
        if not isinstance(test, str) or not isinstance(entry, str) or not entry.isidentifier():
            raise RewardInputError("HumanEval-style sample needs string 'test' and an identifier 'entry_point'")
        return [f"{test}\ncheck({entry})\n"], "assert"
    tests = require_field(sample, tests_key)
    if not isinstance(tests, list) or not tests:
        raise RewardInputError(f"sample[{tests_key!r}] must be a non-empty list of test cases")
    if all(isinstance(t, str) for t in tests):
        return tests, "assert"
    if all(isinstance(t, dict) and isinstance(t.get("input"), str) and isinstance(t.get("output"), str) for t in tests):
        return [{"input": t["input"], "output": t["output"]} for t in tests], "stdio"
    raise RewardInputError(
        f"sample[{tests_key!r}] must be all assert snippets (str) or all {{'input': str, 'output': str}} cases"
    )


def _setup(
    *, isolation: Literal["bwrap", "none"] = "bwrap", sandbox_url: str | None = None, **_reward_params: Any
) -> None:
    """Create the process's sandbox before the first item (outside the per-item timeout)."""
    shared_sandbox(isolation=isolation, sandbox_url=sandbox_url)


@register_reward("code_tests", setup=_setup)
def code_tests_reward(
    completion: str,
    sample: dict,
    *,
    language: str = "python",
    extract: Extract = "last_block",
    scoring: Scoring = "all",
    tests_key: str = "tests",
    prefix_key: str | None = None,
    time_s: float = 10.0,
    memory_mb: int = 1024,
    stop_on_first_failure: bool = False,
    isolation: Literal["bwrap", "none"] = "bwrap",
    sandbox_url: str | None = None,
) -> RewardResult:
    """Score the completion's program by the sample's tests (``sample['language']`` overrides ``language``)."""
    lang = canonical_language(sample["language"] if "language" in sample else language)
    tests, mode = sample_tests(sample, tests_key=tests_key)
    if mode == "assert" and lang != "python":
        raise RewardInputError(f"assert-style tests need language 'python', the sample's language is {lang!r}")
    program = extract_program(completion, language=lang, extract=extract)
    if program is None:
        return RewardResult(score=0.0, info={"extracted": False, "passed": 0, "total": len(tests)})
    if prefix_key is not None:
        prefix = require_field(sample, prefix_key)
        if not isinstance(prefix, str):
            raise RewardInputError(f"sample[{prefix_key!r}] must be a string")
        program = prefix + program
    report = shared_sandbox(isolation=isolation, sandbox_url=sandbox_url).run_tests(
        program,
        tests,
        language=lang,
        mode=mode,
        limits=Limits(time_s=time_s, memory_mb=memory_mb),
        stop_on_first_failure=stop_on_first_failure,
    )
    return _scored(report, scoring=scoring, mode=mode, language=lang)


def _scored(report: TestReport, *, scoring: Scoring, mode: str, language: str) -> RewardResult:
    info = {
        "extracted": True,
        "language": language,
        "mode": mode,
        "status": report.status,
        "passed": report.passed,
        "total": report.total,
        "cases": [{"status": r.status, "message": r.message[:_MESSAGE_CHARS]} for r in report.results],
    }
    if report.status == "sandbox_error":
        detail = report.runs[-1].stderr.strip()[-_MESSAGE_CHARS:] if report.runs else ""
        return RewardResult(score=0.0, error=f"sandbox error: {detail or 'no detail'}", info=info)
    if scoring == "fraction":
        score = report.fraction
    elif scoring == "all":
        score = float(report.all_passed)
    else:
        raise ValueError(f"scoring must be 'all' or 'fraction', got {scoring!r}")
    return RewardResult(score=score, info=info)
