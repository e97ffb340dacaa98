"""Whole-file mode: a prover's whole Lean file (helpers, then the theorem) is checked, not refused.

Recorded Goedel-Prover files (kimina-lean-server, Lean v4.15.0) and constructed files in the
DeepSeek-Prover-V2 layout; replies are recorded or constructed ones from tests/fixtures/lean.
"""

from __future__ import annotations

import pytest
from lean_helpers import read_log, reply_text

from rlkit.rewards.lean import LeanChecker, check_file, extract_file, normalize_statement, precheck
from rlkit.rewards.lean.whole_file import build_file_command, drop_header_imports

PROVER_HEADER = "import Mathlib\nimport Aesop\nset_option maxHeartbeats 400000\nopen BigOperators Real Nat Topology Rat"
GCD_STATEMENT = "theorem mathd_numbertheory_188 : Nat.gcd 180 168 = 12 := by sorry"
GCD_NAME = "mathd_numbertheory_188"
DEMO_STATEMENT = "theorem demo (a b: Nat): a + b = b + a := by"

# DeepSeek-Prover-V2's layout: imports, options, opens, a helper lemma, then the theorem.
GCD_FILE = """import Mathlib
import Aesop

set_option maxHeartbeats 400000

open BigOperators Real Nat Topology Rat

/-- A helper: the gcd of the two numbers, computed. -/
lemma gcd_helper : Nat.gcd 180 168 = 12 := by
  norm_num

theorem mathd_numbertheory_188 :
    Nat.gcd 180 168 = 12 := by
  exact gcd_helper
"""
GCD_SENT = GCD_FILE.split("open BigOperators", 1)[0].replace("import Mathlib\nimport Aesop", "").strip()


def _goedel_files(lean_fixtures) -> list[tuple[str, str, str]]:
    """(file, reference statement, theorem name) for the 9 recorded Goedel-Prover outputs; the reference
    is the file's own statement with its line breaks and indentation changed, ending in ``:= by sorry``."""
    out = []
    for key, f in sorted(lean_fixtures.items()):
        if key.startswith("kimina-v4.15.0-goedel"):
            cmd = f["request"]["cmd"]
            start = cmd.index("theorem ")
            statement = cmd[start : cmd.index(":= by", start)]
            name = statement.split()[1]
            out.append((cmd, " ".join(statement.split()).replace(" :", "\n    :", 1) + " := by sorry", name))
    return out


def test_recorded_prover_files_are_refused_in_proof_mode_and_pass_in_file_mode(lean_fixtures):
    files = _goedel_files(lean_fixtures)
    assert len(files) == 9
    assert {precheck(cmd) for cmd, _, _ in files} == {"imports are fixed by the header: 'import'"}
    for cmd, statement, name in files:
        assert check_file(drop_header_imports(cmd, PROVER_HEADER), statement=statement, theorem_name=name) is None
    # the header's imports are dropped; an import it lacks stays and is refused
    cmd, statement, name = files[0]
    assert drop_header_imports(cmd, PROVER_HEADER).lstrip().startswith("set_option maxHeartbeats 0")
    assert check_file(drop_header_imports(cmd, "import Mathlib"), statement=statement, theorem_name=name) == (
        "imports are fixed by the header: 'import'"
    )


def test_helper_lemmas_and_defs_are_allowed_in_file_mode_only():
    file = drop_header_imports(GCD_FILE, PROVER_HEADER)
    assert check_file(file, statement=GCD_STATEMENT, theorem_name=GCD_NAME) is None
    assert precheck(file) == "starts a new declaration or scope (the theorem statement is fixed): 'lemma'"
    with_def = "def twelve : ℕ := 12\n\ntheorem mathd_numbertheory_188 : Nat.gcd 180 168 = 12 := by\n  simp [twelve]"
    assert check_file(with_def, statement=GCD_STATEMENT, theorem_name=GCD_NAME) is None


CHEATS = [
    ("axiom cheat : Nat.gcd 180 168 = 12", "declares an axiom: 'axiom'"),
    ('macro "norm_num" : tactic => `(tactic| rfl)', "redefines syntax, notation or tactics: 'macro'"),
    ('notation "gcd12" => (12 : ℕ)', "redefines syntax, notation or tactics: 'notation'"),
    ("#exit", "runs a `#` command (#eval, #exit, #print, ...): '#exit'"),
    ("lemma h : Nat.gcd 180 168 = 12 := by native_decide", "trusts the compiler (native_decide): 'native_decide'"),
    ("@[implemented_by m] def n := 22", "overrides compiled code (@[implemented_by]/@[extern]/@[csimp]): 'implemented_by'"),
    ("set_option debug.skipKernelTC true", "sets option 'debug.skipKernelTC' (allowed: maxHeartbeats, maxRecDepth, "
                                           "synthInstance.maxHeartbeats, synthInstance.maxSize)"),
    ("lemma h : Nat.gcd 180 168 = 12 := by sorry", "contains sorry/admit: 'sorry'"),
    ("lemma h : Nat.gcd 180 168 = 12 := by admit", "contains sorry/admit: 'admit'"),
    ("unsafe def x := 1", "uses unsafe code: 'unsafe'"),
    ("run_cmd Lean.logInfo \"x\"", "runs metaprograms or IO: 'run_cmd'"),
    ("instance : Inhabited False := ⟨by simp⟩", "starts a new declaration or scope (the theorem statement is fixed): 'instance'"),
    ("namespace Foo", "starts a new declaration or scope (the theorem statement is fixed): 'namespace'"),
    ("variable (h : False)", "starts a new declaration or scope (the theorem statement is fixed): 'variable'"),
    ("example : True := trivial", "starts a new declaration or scope (the theorem statement is fixed): 'example'"),
    ("import Mathlib.Tactic", "imports are fixed by the header: 'import'"),
]  # fmt: skip


@pytest.mark.parametrize(("line", "reason"), CHEATS)
def test_everything_refused_in_proof_mode_stays_refused_in_file_mode(line, reason):
    file = f"{line}\n\ntheorem mathd_numbertheory_188 : Nat.gcd 180 168 = 12 := by\n  norm_num"
    assert check_file(file, statement=GCD_STATEMENT, theorem_name=GCD_NAME) == reason
    assert precheck(file, mode="file") == reason
    assert precheck(f"  norm_num\n{line}") == reason  # and in proof mode, as before


@pytest.mark.parametrize(
    ("file", "reason"),
    [
        ("theorem mathd_numbertheory_188 : Nat.gcd 180 168 = 13 := by\n  norm_num",
         "the statement of 'mathd_numbertheory_188' differs from the reference statement"),
        ("theorem mathd_numbertheory_188 (h : False) : Nat.gcd 180 168 = 12 := by\n  exact h.elim",
         "the statement of 'mathd_numbertheory_188' differs from the reference statement"),
        ("theorem mathd_numbertheory_188 : Nat.gcd 180 168 = 12 ∨ True := by\n  simp",
         "the statement of 'mathd_numbertheory_188' differs from the reference statement"),
        ("theorem other : Nat.gcd 180 168 = 12 := by\n  norm_num",
         "declares the target theorem 'mathd_numbertheory_188' 0 times (expected once)"),
        ("theorem mathd_numbertheory_188 : Nat.gcd 180 168 = 12 := by norm_num\n"
         "theorem mathd_numbertheory_188 : Nat.gcd 180 168 = 12 := by norm_num",
         "declares the target theorem 'mathd_numbertheory_188' 2 times (expected once)"),
        ("def mathd_numbertheory_188 : Nat.gcd 180 168 = 12 := by\n  norm_num",
         "declares the target 'mathd_numbertheory_188' with def (expected theorem or lemma)"),
        ("def Nat.gcd (a b : ℕ) : ℕ := 12\ntheorem mathd_numbertheory_188 : Nat.gcd 180 168 = 12 := rfl",
         "helper 'Nat.gcd' has a name the statement uses"),
        ("def gcd (a b : ℕ) : ℕ := 12\ntheorem mathd_numbertheory_188 : Nat.gcd 180 168 = 12 := by norm_num",
         "helper 'gcd' has a name the statement uses"),
    ],
)  # fmt: skip
def test_the_target_statement_is_the_reference(file, reason):
    assert check_file(file, statement=GCD_STATEMENT, theorem_name=GCD_NAME) == reason


def test_whitespace_and_comments_do_not_change_a_statement():
    assert normalize_statement("theorem demo (a b: Nat): a + b = b + a") == "theorem demo(a b: Nat): a + b = b + a"
    assert normalize_statement("theorem demo ( a b: Nat )\n  :  a + b -- sum\n = b + a") == (
        "theorem demo(a b: Nat): a + b = b + a"
    )
    assert normalize_statement("theorem demo (ab: Nat)") != normalize_statement("theorem demo (a b: Nat)")
    file = "/- helper-free -/\nlemma demo\n    (a b: Nat) :\n    a + b = b + a := by\n  rw [Nat.add_comm]"
    assert check_file(file, statement=DEMO_STATEMENT, theorem_name="demo") is None


def test_extract_file_takes_the_last_lean_block():
    completion = f"First try:\n```lean\ntheorem x : 1 = 2 := rfl\n```\nFinal:\n```lean4\n{GCD_FILE}```\n"
    assert extract_file(completion) == GCD_FILE
    assert extract_file("theorem t : True := trivial") == "theorem t : True := trivial"


def test_checker_in_file_mode_sends_the_file_and_checks_the_target_axioms(replay, lean_fixtures):
    ok_reply = reply_text(lean_fixtures["constructed-v4.15.0-print_axioms-standard"])  # 'mathd_numbertheory_188' clean
    sent_source = build_file_command(drop_header_imports(GCD_FILE, PROVER_HEADER), theorem_name=GCD_NAME)
    assert sent_source.endswith("exact gcd_helper\n\n#print axioms mathd_numbertheory_188")
    assert sent_source.startswith("set_option maxHeartbeats 400000\n\nopen BigOperators")
    cmd, log = replay([{"request": {"cmd": PROVER_HEADER}, "reply": '{"env": 0}'},
                       {"request": {"cmd": sent_source, "env": 0}, "reply": ok_reply}])
    with LeanChecker(repl_cmd=cmd, header=PROVER_HEADER, timeout_s=10) as checker:
        ok = checker.check(GCD_FILE, statement=GCD_STATEMENT, mode="file")
        refused = checker.check(GCD_FILE, statement=GCD_STATEMENT)  # proof mode: the file is not a proof
        with pytest.raises(ValueError, match=r"mode must be one of \['proof', 'file'\], got 'files'"):
            checker.check(GCD_FILE, statement=GCD_STATEMENT, mode="files")
    assert (ok.ok, ok.status, ok.reason) == (True, "ok", "")
    assert (refused.status, refused.reason) == ("refused", "proof refused before Lean: imports are fixed by the header: 'import'")
    assert [r.get("cmd") for r in read_log(log)[1:]] == [PROVER_HEADER, sent_source]


@pytest.mark.parametrize(
    ("fixture_id", "status", "reason"),
    [
        ("constructed-v4.33.0-rc2-print_axioms-user_axiom", "axioms", "'demo' depends on non-standard axioms: cheat"),
        ("constructed-v4.33.0-rc2-print_axioms-name_mismatch", "axioms", "no '#print axioms' line for 'demo' (found: Foo.demo)"),
        ("constructed-v4.33.0-rc2-print_axioms-sorryAx", "sorry", "the proof contains sorry"),
    ],
)  # fmt: skip
def test_file_mode_verdict_on_recorded_axiom_replies(replay, lean_fixtures, fixture_id, status, reason):
    file = "theorem helper (a b : Nat) : a + b = b + a := Nat.add_comm a b\n\ntheorem demo (a b: Nat): a + b = b + a := by\n  exact helper a b"
    cmd, _ = replay([{"request": {"cmd": "import Mathlib"}, "reply": '{"env": 0}'},
                     {"request": {"cmd": build_file_command(file, theorem_name="demo"), "env": 0},
                      "reply": reply_text(lean_fixtures[fixture_id])}])
    with LeanChecker(repl_cmd=cmd, header="import Mathlib", timeout_s=10) as checker:
        verdict = checker.check(file, statement=DEMO_STATEMENT, mode="file")
    assert (verdict.ok, verdict.status, verdict.reason) == (False, status, reason)


def test_lean_reward_file_mode(replay, lean_fixtures):
    from rlkit.rewards.lean.reward import _CHECKERS, lean_reward

    ok_reply = reply_text(lean_fixtures["constructed-v4.15.0-print_axioms-standard"])
    source = build_file_command(drop_header_imports(GCD_FILE, PROVER_HEADER), theorem_name=GCD_NAME)
    # proof mode cuts the completion after the repeated statement: the helper is lost, and Lean
    # (reply constructed from repl-v4.22.0-dup_msg-2, the identifier renamed) does not know it
    proof_source = f"{GCD_STATEMENT.removesuffix(' sorry')}\n  exact gcd_helper\n\n#print axioms {GCD_NAME}"
    unknown = reply_text(lean_fixtures["repl-v4.22.0-dup_msg-2"]).replace("'g'", "'gcd_helper'")
    cmd, log = replay([{"request": {"cmd": PROVER_HEADER}, "reply": '{"env": 0}'},
                       {"request": {"cmd": source, "env": 0}, "reply": ok_reply},
                       {"request": {"cmd": proof_source, "env": 0}, "reply": unknown}])
    completion = f"Here is the proof.\n```lean4\n{GCD_FILE}```"
    sample = {"statement": GCD_STATEMENT}
    try:
        as_file = lean_reward(completion, sample, repl_cmd=cmd, header=PROVER_HEADER, timeout_s=10, mode="file")
        as_proof = lean_reward(completion, sample, repl_cmd=cmd, header=PROVER_HEADER, timeout_s=10)
    finally:
        for key in [k for k in _CHECKERS if k[0] == tuple(cmd)]:
            _CHECKERS.pop(key).close()
    assert (as_file.score, as_file.info["status"]) == (1.0, "ok")
    assert (as_proof.score, as_proof.info["status"]) == (0.0, "error")
    assert as_proof.info["reason"] == "Lean error: unknown identifier 'gcd_helper'"
    assert [r.get("cmd") for r in read_log(log)[1:]] == [PROVER_HEADER, source, proof_source]
