"""Acceptance: 1,000 hostile inputs per built-in reward give scores and counted errors, never an
exception or a hang past the timeout; a sympy-pathological input costs exactly one timeout."""

from __future__ import annotations

import math
import time

import pytest
from bad_inputs import bad_batch

from rlkit.rewards import RewardResult, list_rewards, score_batch

N = 1000
SEEDS = {"math": 1, "format": 2, "arithmetic": 3, "lean": 4, "code_tests": 5}
TIMEOUT_S = 3.0
# A recorded Lean error reply (v4.33.0-rc2, maxRecDepth) answers every proof that passes precheck.
LEAN_ERROR_REPLY = (
    '{"messages": [{"severity": "error", "pos": {"line": 2, "column": 2}, "endPos": {"line": 2, "column": 8}, '
    '"data": "maximum recursion depth has been reached"}], "env": 1}'
)


def _params(name: str, replay) -> dict:
    if name == "lean":
        cmd, _ = replay([], default={"reply": LEAN_ERROR_REPLY})
        return {"repl_cmd": cmd, "timeout_s": 1.0}
    if name == "code_tests":
        return {}
    return {}


@pytest.mark.parametrize("name", ["math", "format", "arithmetic", "lean", "code_tests"])
def test_thousand_bad_inputs(pool, replay, name):
    if name not in list_rewards():
        pytest.skip(f"reward {name!r} is not available here")
    completions, samples = bad_batch(seed=SEEDS[name], n=N)
    start = time.monotonic()
    results = score_batch(name, completions, samples, timeout_s=TIMEOUT_S, params=_params(name, replay), pool=pool)
    elapsed = time.monotonic() - start
    assert len(results) == N
    assert all(isinstance(r, RewardResult) and math.isfinite(r.score) for r in results)
    timeouts = sum(r.info.get("failure") == "timeout" for r in results)
    errors = sum(r.error is not None for r in results) - timeouts
    non_strings = sum(not isinstance(c, str) for c in completions)
    non_dicts = sum(not isinstance(s, dict) for s in samples)
    assert errors >= non_strings + non_dicts - sum(not isinstance(c, str) and not isinstance(s, dict)
                                                  for c, s in zip(completions, samples))  # fmt: skip
    # No item may hold a worker past the timeout: the whole batch is bounded by the work
    # plus one timeout per timed-out item, spread over the pool's two workers.
    assert elapsed < 60.0 + timeouts * TIMEOUT_S / 2
    print(f"{name}: {N} bad inputs in {elapsed:.1f} s, {errors} errors, {timeouts} timeouts")


def test_pathological_latex_costs_one_timeout(pool):
    completions = [r"\boxed{9^{9^{9^{9}}}}"] + [rf"\boxed{{{k}}}" for k in range(9)]
    samples = [{"answer": "5"}] + [{"answer": str(k)} for k in range(9)]
    start = time.monotonic()
    results = score_batch("math", completions, samples, timeout_s=2.0, pool=pool)
    elapsed = time.monotonic() - start
    assert [r.score for r in results] == [0.0] + [1.0] * 9
    assert results[0].error == "timed out after 2 s"
    assert sum(r.error is not None for r in results) == 1
    assert elapsed < 2.0 + 4.0  # one timeout, not one per item or a stuck batch
