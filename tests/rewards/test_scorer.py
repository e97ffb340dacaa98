"""build_reward / RewardScorer: weighted components, metrics, first errors, user modules, the lean reward."""

from __future__ import annotations

import json

import pytest
from lean_helpers import reply_text

from rlkit.rewards import RewardConfig, build_reward, list_rewards, unregister_reward
from rlkit.rewards.lean import build_command


@pytest.fixture
def helpers_config(tmp_path):
    """A RewardConfig factory whose workers load tests/rewards/reward_helpers.py as a shipped file."""
    import reward_helpers

    def make(**fields) -> RewardConfig:
        return RewardConfig(module=reward_helpers.__file__, workers=2, **fields)

    return make


def test_weighted_components_and_metrics(helpers_config):
    cfg = helpers_config(
        components=[
            {"name": "arithmetic", "weight": 1.0},
            {"name": "t_len", "weight": 0.1, "params": {"scale": 0.5}},
        ]
    )
    completions = ["Answer: 12", "Answer: 3", "no answer"]
    samples = [{"answer": 12}, {"answer": 4}, {"question": "?"}]
    with build_reward(cfg) as scorer:
        batch = scorer(completions, samples)
    # arithmetic: 1, 0, error->0 ; t_len*0.5: 5.0, 4.5, 4.5 ; total = a + 0.1 * t
    assert batch.scores == pytest.approx([1.5, 0.45, 0.45])
    assert batch.metrics == pytest.approx({
        "reward/arithmetic/mean": 1 / 3, "reward/arithmetic/errors": 1.0, "reward/arithmetic/timeouts": 0.0,
        "reward/t_len/mean": 14.0 / 3, "reward/t_len/errors": 0.0, "reward/t_len/timeouts": 0.0,
    })  # fmt: skip
    assert batch.first_errors == {"arithmetic": "RewardInputError: sample has no 'answer' field; fields: question"}
    assert batch.results[0]["arithmetic"].info == {"extracted": 12}
    assert batch.results[1]["t_len"].score == 4.5


def test_timeouts_and_fallback_are_counted(helpers_config):
    cfg = helpers_config(name="t_sleep", timeout_s=0.5, fallback_score=-1.0)
    with build_reward(cfg) as scorer:
        batch = scorer(["a", "b", "c"], [{"sleep": 60}, {}, {"sleep": 60}])
    assert batch.scores == [-1.0, 1.0, -1.0]
    assert batch.metrics["reward/t_sleep/timeouts"] == 2.0
    assert batch.metrics["reward/t_sleep/errors"] == 0.0
    assert batch.metrics["reward/t_sleep/mean"] == pytest.approx(-1 / 3)
    assert batch.first_errors == {"t_sleep": "timed out after 0.5 s"}


def test_pool_is_reused_across_calls_and_closed(helpers_config):
    scorer = build_reward(helpers_config(name="t_pid"))
    procs = [w.proc for w in scorer.pool._workers]
    workers = [p.pid for p in procs]
    first = {r["t_pid"].info["pid"] for r in scorer(["x"] * 6, [{}] * 6).results}
    second = {r["t_pid"].info["pid"] for r in scorer(["x"] * 6, [{}] * 6).results}
    assert first | second <= set(workers) and len(workers) == 2
    assert [w.proc.pid for w in scorer.pool._workers] == workers
    scorer.close()
    assert [p.poll() is not None for p in procs] == [True, True]
    with pytest.raises(RuntimeError, match="the reward pool is closed"):
        scorer(["x"], [{}])


def test_user_file_reaches_workers_as_source(tmp_path):
    path = tmp_path / "shipped_rewards.py"
    path.write_text(
        "import os\nfrom rlkit.rewards import register_reward, RewardResult\n\n"
        "@register_reward('t_shipped')\n"
        "def shipped(completion: str, sample: dict, *, bonus: float = 0.0) -> RewardResult:\n"
        "    return RewardResult(1.0 + bonus, info={'file': __file__, 'pid': os.getpid()})\n"
    )
    try:
        cfg = RewardConfig(name="t_shipped", params={"bonus": 0.5}, module=str(path), workers=1)
        path.unlink()  # the workers get the source text, not the path
        with build_reward(cfg) as scorer:
            batch = scorer(["x"], [{}])
        assert batch.scores == [1.5]
        import os

        assert batch.results[0]["t_shipped"].info["pid"] != os.getpid()
        assert batch.results[0]["t_shipped"].info["file"] == str(path.resolve())
    finally:
        if "t_shipped" in list_rewards():
            unregister_reward("t_shipped")


def test_length_mismatch_raises(helpers_config):
    with build_reward(helpers_config(name="t_len")) as scorer, pytest.raises(ValueError, match="2 completions but 1"):
        scorer(["a", "b"], [{}])


def test_lean_reward_through_the_pool(replay, lean_fixtures):
    statement = "theorem mathd_numbertheory_188 : Nat.gcd 180 168 = 12 := by sorry"
    good = build_command(statement[: -len(" sorry")], "norm_num", theorem_name="mathd_numbertheory_188")
    slow = build_command(statement[: -len(" sorry")], "simp", theorem_name="mathd_numbertheory_188")
    ok_reply = reply_text(lean_fixtures["constructed-v4.15.0-print_axioms-standard"])
    cmd, _ = replay(
        [
            {"request": {"cmd": "import Mathlib"}, "reply": '{"env": 0}'},
            {"request": {"cmd": good, "env": 0}, "reply": ok_reply},
            {"request": {"cmd": slow, "env": 0}, "action": "hang"},
        ]
    )
    cfg = RewardConfig(
        name="lean",
        params={"repl_cmd": cmd, "header": "import Mathlib", "timeout_s": 1.0},
        timeout_s=5.0,
        workers=1,
    )
    completions = [
        "The proof:\n```lean\ntheorem mathd_numbertheory_188 : Nat.gcd 180 168 = 12 := by\n  norm_num\n```",
        "```lean\nnorm_num\n```",
        "  sorry",
        "  simp",
    ]
    samples = [{"statement": statement}] * 3 + [{"statement": statement}]
    with build_reward(cfg) as scorer:
        batch = scorer(completions, samples)
        again = scorer(completions[:1], samples[:1])  # the REPL (header loaded) is reused
    assert batch.scores == [1.0, 1.0, 0.0, 0.0]
    refused = batch.results[2]["lean"]
    assert (refused.error, refused.info["status"]) == (None, "refused")
    assert refused.info["reason"] == "proof refused before Lean: contains sorry/admit: 'sorry'"
    hung = batch.results[3]["lean"]
    assert (hung.error, hung.info["failure"]) == ("no reply from the Lean REPL within 1 s", "timeout")
    assert batch.metrics["reward/lean/timeouts"] == 1.0 and batch.metrics["reward/lean/errors"] == 0.0
    assert again.scores == [1.0]
    assert json.loads(json.dumps(batch.metrics))  # plain floats, loggable
