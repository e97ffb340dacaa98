"""LeanChecker and the REPL protocol client, driven by a replay process that answers with recorded bytes."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest
from lean_helpers import read_log, reply_text

from rlkit.rewards.lean import LaunchSpec, LeanChecker, LeanStartError, LocalProcess, ReplSession, build_command
from rlkit.rewards.lean.process import get_launcher

HEADER = "import Mathlib"
HEADER_REPLY = '{"env": 0}'  # recorded: repl-v4.28.0-mathlib-exact-0

GCD = ("theorem mathd_numbertheory_188 : Nat.gcd 180 168 = 12 := by", "norm_num", "mathd_numbertheory_188")
SORRY_OLD = ("theorem mathd_numbertheory_739 :\n  9! % 10 = 0 := by", "simp", "mathd_numbertheory_739")
DEMO = ("theorem demo (a b: Nat): a + b = b + a := by", "rw [Nat.add_comm]", "demo")


def _entry(item: tuple[str, str, str], reply: str | None = None, **action) -> dict:
    statement, proof, name = item
    request = {"cmd": build_command(statement, proof, theorem_name=name), "env": 0}
    return {"request": request, "reply": reply, **action}


def _header_entry(reply: str = HEADER_REPLY) -> dict:
    return {"request": {"cmd": HEADER}, "reply": reply}


def _check(checker: LeanChecker, item: tuple[str, str, str]):
    statement, proof, _ = item
    return checker.check(proof, statement=statement)


def _starts(log: Path) -> int:
    return sum(1 for line in read_log(log) if "start" in line)


# --- the protocol client against every recorded REPL session ---------------------------------


def _sessions() -> dict[str, list[dict]]:
    path = Path(__file__).resolve().parents[1] / "fixtures/lean/fixtures.jsonl"
    sessions: dict[str, list[dict]] = {}
    for f in map(json.loads, path.read_text(encoding="utf-8").splitlines()):
        if f["session"]:
            sessions.setdefault(f["session"], []).append(f)
    return {k: sorted(v, key=lambda f: f["step"]) for k, v in sessions.items()}


SESSIONS = _sessions()


@pytest.mark.parametrize("name", sorted(SESSIONS))
def test_recorded_session_replays_through_the_client(replay, name):
    steps = SESSIONS[name]
    cmd, _ = replay([{"request": f["request"], "reply": f["response_text"]} for f in steps])
    session = ReplSession(launch=get_launcher("local"), spec=LaunchSpec(argv=tuple(cmd)), timeout_s=10)
    try:
        for f in steps:
            reply = session.send(f["request"])
            assert reply.failure is None, reply.detail
            assert reply.response == f["response"]
    finally:
        session.close()


def test_all_sessions_are_covered():
    assert (len(SESSIONS), sum(map(len, SESSIONS.values()))) == (40, 119)


# --- verdicts through the checker -----------------------------------------------------------------


@pytest.fixture
def checker_for(replay):
    made: list[LeanChecker] = []

    def make(entries: list[dict], **kwargs) -> tuple[LeanChecker, Path]:
        cmd, log = replay([_header_entry(), *entries], default=kwargs.pop("default", None))
        checker = LeanChecker(repl_cmd=cmd, header=HEADER, timeout_s=kwargs.pop("timeout_s", 10.0), **kwargs)
        made.append(checker)
        return checker, log

    yield make
    for checker in made:
        checker.close()


def test_success_reuses_the_header_environment(checker_for, lean_fixtures):
    ok_reply = reply_text(lean_fixtures["constructed-v4.15.0-print_axioms-standard"])
    checker, log = checker_for([_entry(GCD, ok_reply)])
    first, second = _check(checker, GCD), _check(checker, GCD)
    assert (first.ok, first.status, first.reason) == (True, "ok", "")
    assert first.time_s is not None and first.time_s > 0
    assert second.ok
    sent = read_log(log)
    assert [list(x) for x in sent] == [["start"], ["cmd"], ["cmd", "env"], ["cmd", "env"]]
    assert sent[2]["cmd"] == (
        "theorem mathd_numbertheory_188 : Nat.gcd 180 168 = 12 := by\n  norm_num\n\n"
        "#print axioms mathd_numbertheory_188"
    )


@pytest.mark.parametrize(
    ("fixture_id", "item", "status", "reason"),
    [
        ("constructed-v4.15.0-print_axioms-sorryAx-old_wording", SORRY_OLD, "sorry", "the proof contains sorry"),
        (
            "constructed-v4.15.0-admit_warning_without_sorries", SORRY_OLD, "sorry",
            "Lean reports that the declaration uses sorry",
        ),
        ("repl-v4.28.0-mathlib-exact-3", SORRY_OLD, "sorry", "the proof contains sorry"),  # new wording
        (
            "constructed-v4.33.0-rc2-print_axioms-user_axiom", DEMO, "axioms",
            "'demo' depends on non-standard axioms: cheat",
        ),
        (
            "constructed-v4.33.0-rc2-print_axioms-native_decide", DEMO, "axioms",
            "'one_add_one' depends on non-standard axioms: Lean.ofReduceBool, Lean.trustCompiler",
        ),
        (
            "constructed-v4.33.0-rc2-print_axioms-name_mismatch", DEMO, "axioms",
            "no '#print axioms' line for 'demo' (found: Foo.demo)",
        ),
        ("constructed-v4.33.0-rc2-exit_before_print_axioms", DEMO, "axioms", "no '#print axioms' line for 'demo'"),
        (
            "constructed-v4.33.0-rc2-max_rec_depth", DEMO, "error",
            "Lean error: maximum recursion depth has been reached",
        ),
        ("repl-v4.33.0-rc2-unknown_environment-0", DEMO, "repl_error", "REPL error: Unknown environment."),
    ],
)  # fmt: skip
def test_recorded_failures(checker_for, lean_fixtures, fixture_id, item, status, reason):
    checker, _ = checker_for([_entry(item, reply_text(lean_fixtures[fixture_id]))])
    verdict = _check(checker, item)
    assert (verdict.ok, verdict.status, verdict.reason) == (False, status, reason)


def test_refused_proof_never_reaches_lean(checker_for):
    checker, log = checker_for([])
    verdict = checker.check("  sorry", statement=GCD[0])
    assert (verdict.status, verdict.reason) == ("refused", "proof refused before Lean: contains sorry/admit: 'sorry'")
    assert not log.exists()  # no REPL was even started
    unnamed = checker.check("rfl", statement="example : 1 = 1 := by")
    assert unnamed.reason == "the statement declares no theorem name to check with #print axioms"
    huge = checker.check("rfl", statement="theorem t : True := by" + " " * 20_000)
    assert huge.reason == "the statement is 20022 characters (limit 20000)"


def test_hung_repl_times_out_and_is_replaced(checker_for, lean_fixtures):
    ok_reply = reply_text(lean_fixtures["constructed-v4.33.0-rc2-print_axioms-none"])
    checker, log = checker_for([_entry(GCD, action="hang"), _entry(DEMO, ok_reply)], timeout_s=1.0)
    hung = _check(checker, GCD)
    assert (hung.ok, hung.status, hung.reason) == (False, "timeout", "no reply from the Lean REPL within 1 s")
    assert 1.0 <= hung.time_s < 5.0
    assert _check(checker, DEMO).ok
    assert _starts(log) == 2
    assert [r.get("cmd") for r in read_log(log) if "start" not in r].count(HEADER) == 2  # header reloaded


def test_crashed_repl_gives_a_crash_verdict_and_is_replaced(checker_for, lean_fixtures):
    ok_reply = reply_text(lean_fixtures["constructed-v4.33.0-rc2-print_axioms-none"])
    checker, log = checker_for([_entry(GCD, action="exit"), _entry(DEMO, ok_reply)])
    crashed = _check(checker, GCD)
    assert (crashed.ok, crashed.status) == (False, "crash")
    assert crashed.reason == (
        "the Lean REPL exited without a reply (exit code 3); stderr: replay: simulated REPL crash"
    )
    assert _check(checker, DEMO).ok
    assert _starts(log) == 2


def test_non_json_reply_is_a_crash(checker_for):
    checker, _ = checker_for([_entry(GCD, action="garbage")])
    verdict = _check(checker, GCD)
    assert (verdict.status, verdict.reason) == (
        "crash", "the Lean REPL replied with non-JSON text: b'this is not JSON\\n\\n'",
    )  # fmt: skip


def test_memory_cap_kills_the_repl(checker_for):
    checker, _ = checker_for([_entry(GCD, action="eat_memory", mb=400)], memory_mb=200)
    verdict = _check(checker, GCD)
    assert verdict.status == "memory"
    assert verdict.reason.startswith("REPL used ") and verdict.reason.endswith("MiB (limit 200 MiB)")


def test_header_failure_is_reported(replay, lean_fixtures):
    bad_header = reply_text(lean_fixtures["constructed-v4.33.0-rc2-max_rec_depth"])
    cmd, _ = replay([_header_entry(bad_header)])
    with LeanChecker(repl_cmd=cmd, header=HEADER, timeout_s=5) as checker:
        verdict = _check(checker, GCD)
        assert verdict.status == "unavailable"
        assert verdict.reason == (
            "the REPL did not load the header: Lean error: maximum recursion depth has been reached\n"
            "use `set_option maxRecDepth <num>` to increase limit\n"
            "use `set_option diagnostics true` to get diagnostic information"
        )
        with pytest.raises(LeanStartError, match="the REPL did not load the header"):
            checker.start()


def test_missing_binary_is_unavailable():
    with LeanChecker(repl_cmd=["/nonexistent/repl"], timeout_s=5) as checker:
        verdict = _check(checker, GCD)
    assert verdict.status == "unavailable"
    assert verdict.reason.startswith("cannot start ['/nonexistent/repl']: [Errno 2] No such file or directory")


def test_repl_is_recycled_after_max_uses(checker_for, lean_fixtures):
    ok_reply = reply_text(lean_fixtures["constructed-v4.15.0-print_axioms-standard"])
    checker, log = checker_for([_entry(GCD, ok_reply)], max_uses=2)
    assert [_check(checker, GCD).ok for _ in range(5)] == [True] * 5
    assert _starts(log) == 3


def test_workers_check_concurrently_in_order(checker_for, lean_fixtures):
    ok_reply = reply_text(lean_fixtures["constructed-v4.15.0-print_axioms-standard"])
    sorry_reply = reply_text(lean_fixtures["constructed-v4.15.0-print_axioms-sorryAx-old_wording"])
    checker, log = checker_for([_entry(GCD, ok_reply), _entry(SORRY_OLD, sorry_reply)], workers=2)
    items = [(GCD[0], GCD[1]), (SORRY_OLD[0], SORRY_OLD[1])] * 3
    verdicts = checker.check_many(items)
    assert [v.status for v in verdicts] == ["ok", "sorry"] * 3
    assert _starts(log) == 2


def test_launcher_is_pluggable(replay, lean_fixtures):
    ok_reply = reply_text(lean_fixtures["constructed-v4.15.0-print_axioms-standard"])
    cmd, _ = replay([_header_entry(), _entry(GCD, ok_reply)])
    launched: list[LaunchSpec] = []

    def launcher(spec: LaunchSpec) -> LocalProcess:
        launched.append(spec)
        return LocalProcess(spec)

    with LeanChecker(repl_cmd=cmd, header=HEADER, launcher=launcher, memory_mb=4096, timeout_s=5) as checker:
        assert _check(checker, GCD).ok
    assert [(s.argv, s.memory_mb) for s in launched] == [(tuple(cmd), 4096)]
    with pytest.raises(ValueError, match="unknown launcher 'docker'; known: local, sandbox"):
        LeanChecker(repl_cmd=cmd, launcher="docker")


def _sandbox_works() -> bool:
    if shutil.which("bwrap") is None or not Path("/usr/bin/python3").exists():
        return False
    try:
        from rlkit.sandbox import Sandbox

        return Sandbox().run("print(1)").stdout == "1\n"
    except Exception:
        return False


@pytest.fixture
def project_dir():
    """A Lean-project stand-in outside /tmp: the sandbox has its own private /tmp."""
    path = Path(tempfile.mkdtemp(prefix="rlkit-lean-test-", dir="/var/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.skipif(not _sandbox_works(), reason="bubblewrap sandbox not usable here")
def test_sandbox_launcher_runs_the_repl_isolated(project_dir, lean_fixtures):
    shutil.copy(Path(__file__).with_name("lean_replay.py"), project_dir / "lean_replay.py")
    ok_reply = reply_text(lean_fixtures["constructed-v4.15.0-print_axioms-standard"])
    script = {"entries": [_header_entry(), _entry(GCD, ok_reply)]}
    (project_dir / "script.json").write_text(json.dumps(script))
    cmd = ["/usr/bin/python3", str(project_dir / "lean_replay.py"), str(project_dir / "script.json")]
    with LeanChecker(repl_cmd=cmd, cwd=project_dir, header=HEADER, launcher="sandbox", timeout_s=20) as checker:
        verdict = _check(checker, GCD)
        assert (verdict.ok, verdict.reason) == (True, "")
        assert type(checker.sessions[0]._proc).__name__ == "IsolatedProcess"


@pytest.mark.skipif(shutil.which("lean") is None, reason="no `lean` on PATH (see docs/rewards.md)")
def test_real_lean_repl(tmp_path):
    import os

    repl = os.environ.get("RLKIT_LEAN_REPL") or shutil.which("repl")
    if repl is None:
        pytest.skip("`lean` is on PATH but no REPL binary: set RLKIT_LEAN_REPL to leanprover-community/repl's binary")
    project = os.environ.get("RLKIT_LEAN_PROJECT")
    with LeanChecker(repl_cmd=[repl], cwd=project, timeout_s=120) as checker:
        good = checker.check("  decide", statement="theorem rlkit_two : 1 + 1 = 2 := by")
        wrong = checker.check("  decide", statement="theorem rlkit_three : 1 + 1 = 3 := by")
        assert (good.ok, good.status) == (True, "ok")
        assert (wrong.ok, wrong.status) == (False, "error")
