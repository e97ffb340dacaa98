"""verdict_from_response against every judged recorded/constructed REPL reply."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from rlkit.rewards.lean import Verdict, format_messages, verdict_from_response

_FIXTURES = [
    json.loads(line)
    for line in (Path(__file__).resolve().parents[1] / "fixtures/lean/fixtures.jsonl").read_text().splitlines()
]
JUDGED = [f for f in _FIXTURES if f["expected_ok"] is not None]
_WORDINGS = {"sorry_warning_old_wording", "sorry_warning_new_wording"}
SORRY_WORDINGS = [f for f in JUDGED if _WORDINGS & set(f["categories"])]


def test_fixture_counts():
    assert (len(_FIXTURES), len(JUDGED), sum(f["expected_ok"] for f in JUDGED)) == (145, 126, 27)
    assert len(SORRY_WORDINGS) == 34


@pytest.mark.parametrize("fixture", JUDGED, ids=[f["id"] for f in JUDGED])
def test_verdict_matches_expected_ok(fixture):
    verdict = verdict_from_response(fixture["response"], theorem_name=fixture["theorem_name"])
    assert verdict.ok is fixture["expected_ok"]
    assert (verdict.reason == "") is verdict.ok
    assert (verdict.status == "ok") is verdict.ok


@pytest.mark.parametrize("fixture", SORRY_WORDINGS, ids=[f["id"] for f in SORRY_WORDINGS])
def test_sorry_warning_alone_fails_in_both_wordings(fixture):
    # `sorries` lists only literal `sorry` syntax; `admit`/`sorryAx` leave only the warning.
    response = copy.deepcopy(fixture["response"])
    response.pop("sorries", None)
    verdict = verdict_from_response(response)
    assert (verdict.ok, verdict.status, verdict.reason) == (
        False, "sorry", "Lean reports that the declaration uses sorry",
    )  # fmt: skip


def _verdict(lean_fixtures, fixture_id: str) -> Verdict:
    f = lean_fixtures[fixture_id]
    return verdict_from_response(f["response"], theorem_name=f["theorem_name"])


@pytest.mark.parametrize(
    ("fixture_id", "status", "reason"),
    [
        ("constructed-v4.15.0-print_axioms-standard", "ok", ""),
        ("constructed-v4.33.0-rc2-print_axioms-none", "ok", ""),
        ("constructed-v4.33.0-rc2-print_axioms-wrapped", "ok", ""),
        ("kimina-v4.15.0-goedel-lean_workbook_1008", "ok", ""),  # info "Try this" messages only
        ("kimina-v4.15.0-goedel-lean_workbook_10026", "ok", ""),  # linter warnings only
        ("constructed-v4.33.0-rc2-print_axioms-user_axiom", "axioms", "'demo' depends on non-standard axioms: cheat"),
        (
            "constructed-v4.33.0-rc2-print_axioms-native_decide", "axioms",
            "'one_add_one' depends on non-standard axioms: Lean.ofReduceBool, Lean.trustCompiler",
        ),
        (
            "constructed-v4.15.0-print_axioms-implemented_by_native_decide", "axioms",
            "'bad' depends on non-standard axioms: Lean.ofReduceBool",
        ),
        (
            "constructed-v4.33.0-rc2-print_axioms-name_mismatch", "axioms",
            "no '#print axioms' line for 'demo' (found: Foo.demo)",
        ),
        ("constructed-v4.33.0-rc2-exit_before_print_axioms", "axioms", "no '#print axioms' line for 'demo'"),
        ("constructed-v4.15.0-admit_warning_without_sorries", "sorry", "Lean reports that the declaration uses sorry"),
        ("constructed-v4.33.0-rc2-print_axioms-sorryAx", "sorry", "the proof contains sorry"),
        ("repl-v4.28.0-readme-0", "sorry", "the proof contains sorry"),
        (
            "constructed-v4.33.0-rc2-heartbeat_timeout", "error",
            "Lean error: (deterministic) timeout at `whnf`, maximum number of heartbeats (200000) has been reached",
        ),
        ("constructed-v4.33.0-rc2-max_rec_depth", "error", "Lean error: maximum recursion depth has been reached"),
        ("repl-v4.33.0-rc2-unknown_environment-0", "repl_error", "REPL error: Unknown environment."),
        ("repl-v4.3.0-unknown_tactic-1", "repl_error", "REPL error: <input>:1:1: unknown tactic"),
        (
            "repl-v4.27.0-self_proof_exact_check-2", "incomplete",
            (
                "proofStatus is not Completed: Error: kernel type check failed: "
                "(kernel) declaration has free variables '[anonymous]'"
            ),
        ),
    ],
)  # fmt: skip
def test_status_and_reason(lean_fixtures, fixture_id, status, reason):
    verdict = _verdict(lean_fixtures, fixture_id)
    assert (verdict.status, verdict.reason) == (status, reason)


def test_tactic_reply_without_proof_status_is_not_complete(lean_fixtures):
    done = lean_fixtures["repl-v4.3.0-readme-2"]["response"]  # {"proofState": 2, "goals": []}
    assert verdict_from_response(done).reason == (
        "tactic proof not known to be complete: this REPL reports no proofStatus (Lean < v4.19)"
    )
    open_goal = lean_fixtures["repl-v4.3.0-readme-1"]["response"]
    assert verdict_from_response(open_goal).reason == "tactic proof not known to be complete: 1 goals remain"


def test_forged_clean_axioms_line_does_not_hide_the_real_one(lean_fixtures):
    # A proof that prints a fake clean line (e.g. via trace) next to Lean's real sorryAx line.
    response = copy.deepcopy(lean_fixtures["constructed-v4.19.0-heartbeat_timeout"]["response"])
    response["messages"] = [m for m in response["messages"] if m["severity"] != "error"]
    fake = {"severity": "info", "pos": {"line": 6, "column": 2}, "data": "'bar' does not depend on any axioms"}
    response["messages"].insert(0, fake)
    verdict = verdict_from_response(response, theorem_name="bar")
    assert (verdict.status, verdict.reason) == ("axioms", "'bar' depends on non-standard axioms: sorryAx")


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        (None, "the REPL reply is not a JSON object: None"),
        ([1, 2], "the REPL reply is not a JSON object: [1, 2]"),
        ({"messages": "oops"}, "the reply's 'messages' is not a list of objects: 'oops'"),
    ],
)
def test_malformed_replies(response, reason):
    verdict = verdict_from_response(response)
    assert (verdict.ok, verdict.status, verdict.reason) == (False, "bad_reply", reason)


def test_killed_process_fixtures_have_no_reply_and_are_not_ok(lean_fixtures):
    killed = [f for f in lean_fixtures.values() if "process_timeout" in f["categories"]]
    assert len(killed) == 2 and all(f["response"] is None for f in killed)
    assert all(verdict_from_response(f["response"]).status == "bad_reply" for f in killed)


def test_feedback_lists_messages_for_a_feedback_turn(lean_fixtures):
    verdict = _verdict(lean_fixtures, "constructed-v4.15.0-print_axioms-sorryAx-old_wording")
    assert verdict.feedback == (
        "1:8: warning: declaration uses 'sorry'\n"
        "3:0: info: 'mathd_numbertheory_739' depends on axioms: [sorryAx]"
    )
    assert format_messages([{"severity": "error", "data": "boom"}]) == "?:?: error: boom"


def test_verdict_invariants():
    with pytest.raises(ValueError, match="needs a reason"):
        Verdict(ok=False, status="error")
    with pytest.raises(ValueError, match="contradicts status"):
        Verdict(ok=True, status="error")
