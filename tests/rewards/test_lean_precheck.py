"""precheck: proof text that could fake a proof is refused before Lean runs; command assembly."""

from __future__ import annotations

import pytest

from rlkit.rewards.lean import build_command, extract_proof, precheck, theorem_name_of
from rlkit.rewards.lean.precheck import strip_trailing_sorry, without_comments

OVERRIDE = "overrides compiled code (@[implemented_by]/@[extern]/@[csimp])"
ALLOWED = "(allowed: maxHeartbeats, maxRecDepth, synthInstance.maxHeartbeats, synthInstance.maxSize)"
DECLARES = "starts a new declaration or scope (the theorem statement is fixed)"


@pytest.mark.parametrize(
    ("proof", "reason"),
    [
        ("sorry", "contains sorry/admit: 'sorry'"),
        ("  simp\n  admit", "contains sorry/admit: 'admit'"),
        ("exact sorryAx _ false", "contains sorry/admit: 'sorryAx'"),
        ("rfl\nimport Mathlib.Tactic", "imports are fixed by the header: 'import'"),
        ("rfl\naxiom cheat : False", "declares an axiom: 'axiom'"),
        ("rfl\n#exit", "runs a `#` command (#eval, #exit, #print, ...): '#exit'"),
        ("rfl\n#eval IO.println 1", "runs a `#` command (#eval, #exit, #print, ...): '#eval'"),
        ("rfl\n#print axioms t", "runs a `#` command (#eval, #exit, #print, ...): '#print'"),
        ("rfl\n@[implemented_by m] def n := 22", f"{OVERRIDE}: 'implemented_by'"),
        ("rfl\n@[extern \"c_fn\"] opaque f : Nat", f"{OVERRIDE}: 'extern'"),
        ("native_decide", "trusts the compiler (native_decide): 'native_decide'"),
        ("exact Lean.ofReduceBool _ _ h", "trusts the compiler (native_decide): 'ofReduceBool'"),
        ("rfl\nunsafe def x := 1", "uses unsafe code: 'unsafe'"),
        ("set_option debug.skipKernelTC true in\n  rfl", f"sets option 'debug.skipKernelTC' {ALLOWED}"),
        ("set_option warn.sorry false in\n  rfl", f"sets option 'warn.sorry' {ALLOWED}"),
        ("rfl\nmacro \"norm_num\" : tactic => `(tactic| sorry)", "contains sorry/admit: 'sorry'"),
        ("rfl\nmacro \"norm_num\" : tactic => `(tactic| rfl)", "redefines syntax, notation or tactics: 'macro'"),
        ("macro_rules | `(tactic| trivial) => `(tactic| rfl)", "redefines syntax, notation or tactics: 'macro_rules'"),
        ("rfl\nnotation \"⊤\" => True", "redefines syntax, notation or tactics: 'notation'"),
        ("rfl\nrun_cmd Lean.logInfo \"x\"", "runs metaprograms or IO: 'run_cmd'"),
        ("run_tac Lean.Elab.Tactic.evalTactic", "runs metaprograms or IO: 'run_tac'"),
        ("exact (IO.FS.readFile \"/etc/passwd\")", "uses IO: 'IO'"),
        ("rfl\ntheorem t : 1 = 2 := rfl", f"{DECLARES}: 'theorem'"),
        ("rfl\nend\nnamespace Foo", f"{DECLARES}: 'end'"),
        ("rfl\ninstance : Inhabited False := ⟨sorryAx _⟩", "contains sorry/admit: 'sorryAx'"),
        ("", "empty proof"),
        ("  \n ", "empty proof"),
        ("rfl\x00", "proof contains a NUL character"),
        ("rfl\udc80", "proof is not valid Unicode text (lone surrogates)"),
        ("simp " * 30_000, "proof is 150000 characters (limit 100000)"),
    ],
)  # fmt: skip
def test_refused(proof, reason):
    assert precheck(proof) == reason


@pytest.mark.parametrize(
    "proof",
    [
        "norm_num",
        "  nlinarith [sq_nonneg (a - b), sq_nonneg (a + b)]",
        "set_option maxHeartbeats 400000 in\n  nlinarith [sq_nonneg (a - b)]",
        "  -- the end of the proof: no sorry here\n  simp",
        "  /- a lemma-style /- nested -/ comment with axiom -/\n  decide",
        "  have h' : x = x := rfl\n  exact h'",
        "  exact Nat.le_of_lt_succ (by omega)",
        "  simp [Finset.sum_range_succ, Nat.factorial]",
        "  rw [show (2:ℝ) = 1 + 1 by norm_num]\n  ring",
    ],
)
def test_accepted(proof):
    assert precheck(proof) is None


def test_recorded_prover_proofs_pass(lean_fixtures):
    # Goedel-Prover proofs recorded through kimina-lean-server: comments full of prose, no tricks.
    cmds = [f["request"]["cmd"] for k, f in lean_fixtures.items() if k.startswith("kimina-v4.15.0-goedel")]
    assert len(cmds) == 9
    assert [precheck(cmd.split(":= by", 1)[1]) for cmd in cmds] == [None] * 9


def test_comments_are_kept_when_a_string_could_hide_code():
    # Lean reads `"--"` as a string, so `#exit` below is code: with a string present nothing is stripped.
    sneaky = 'exact "--"\n#exit'
    assert without_comments(sneaky) == sneaky
    assert precheck(sneaky) == "runs a `#` command (#eval, #exit, #print, ...): '#exit'"
    assert precheck("exact «-- » \n#exit").startswith("runs a `#` command")
    assert without_comments("a -- b\nc /- d /- e -/ f -/ g") == "a \nc   g"


def test_not_a_string():
    assert precheck(None) == "proof must be a str, got NoneType"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("statement", "name"),
    [
        ("theorem mathd_algebra_10 : abs ((120 : ℝ) / 100 * 30 - 130 / 100 * 20) = 10 := by", "mathd_algebra_10"),
        ("@[simp] protected theorem Foo.bar' (x : Nat) : x = x := by", "Foo.bar'"),
        ("/- doc -/\nlemma h₁ {a : ℕ} : a = a := by", "h₁"),
        ("example : 1 = 1 := by", None),
    ],
)
def test_theorem_name_of(statement, name):
    assert theorem_name_of(statement) == name


def test_build_command_indents_column_zero_tactics():
    assert build_command("theorem t : True := by", "trivial", theorem_name="t") == (
        "theorem t : True := by\n  trivial\n\n#print axioms t"
    )
    assert build_command("theorem t : True := by\n", "  constructor\n  · rfl", theorem_name="t") == (
        "theorem t : True := by\n  constructor\n  · rfl\n\n#print axioms t"
    )
    term = build_command("theorem t : 1 = 1 :=", "rfl", theorem_name="t")
    assert term == "theorem t : 1 = 1 :=\nrfl\n\n#print axioms t"


def test_strip_trailing_sorry_and_extract_proof():
    statement = "theorem t (n : Nat) : n + 0 = n := by sorry"
    assert strip_trailing_sorry(statement) == "theorem t (n : Nat) : n + 0 = n := by"
    completion = (
        "Let me think.\n```lean\ntheorem t (n : Nat) : n + 0 = n := by\n  simp\n```\n"
        "Or in full:\n```lean4\ntheorem t (n : Nat) :\n    n + 0 = n := by\n  omega\n```"
    )
    assert extract_proof(completion, statement=statement) == "\n  omega\n"
    assert extract_proof("  simp", statement=statement) == "  simp"
    changed = "```lean\ntheorem t (n : Nat) : n + 1 = n := by\n  simp\n```"
    refused = precheck(extract_proof(changed, statement=statement))
    assert refused == f"{DECLARES}: 'theorem'"
