"""A reward that fails on every response stops the run with the reward's own error (issue 10, finding 7).

Real reward worker processes (the trainer's RewardScorer); no engine: the completions are given.
"""

from __future__ import annotations

import pytest

REWARDS = '''
from rlkit.rewards import register_reward


@register_reward("always_raises")
def always_raises(completion: str, sample: dict) -> float:
    raise KeyError("sample has no 'solution' field")


@register_reward("raises_on_short")
def raises_on_short(completion: str, sample: dict) -> float:
    if len(completion) < 3:
        raise ValueError("too short to score")
    return 1.0
'''


@pytest.fixture(scope="module")
def module(tmp_path_factory):
    path = tmp_path_factory.mktemp("rewards") / "broken_rewards.py"  # one file: a module name imports once
    path.write_text(REWARDS)
    return path


def _trainer(module, reward_name):
    from rlkit.config import load_config
    from rlkit.rewards import build_reward
    from rlkit.trainer import Trainer

    cfg = load_config("examples/arithmetic_grpo.yaml", overrides=[
        f"reward.name={reward_name}", "reward.params={}", f"reward.module={module}", "reward.workers=1",
    ])  # fmt: skip
    trainer = Trainer.__new__(Trainer)  # the real score(); no engines or learners needed
    trainer.config, trainer.step, trainer.reward = cfg, 7, build_reward(cfg.reward)
    return trainer


def _rollouts(texts):
    from rlkit.rollout.types import Completion
    from rlkit.trainer import Rollouts

    return Rollouts(
        rows=[{"answer": "1"}] * len(texts), prompt_ids=[[1]] * len(texts),
        completions=[Completion(prompt_index=0, token_ids=[5], logprobs=[0.0], text=t, finish_reason="stop") for t in texts],
        group_ids=[0] * len(texts),
    )  # fmt: skip


def test_reward_failing_on_every_item_stops_with_its_error(module):
    from rlkit.trainer import RewardFailedError

    trainer = _trainer(module, "always_raises")
    try:
        with pytest.raises(RewardFailedError, match=r"step 7: reward 'always_raises' failed on all 4 responses "
                                                    r"\(0 timed out\); first error: .*KeyError.*no 'solution' field"):
            trainer.score(_rollouts(["a", "bb", "ccc", "dddd"]))
    finally:
        trainer.reward.close()


def test_partial_failures_are_scored_with_the_fallback(module):
    trainer = _trainer(module, "raises_on_short")
    try:
        rollouts = _rollouts(["a", "long enough", "bb", "also fine"])
        metrics = trainer.score(rollouts)
    finally:
        trainer.reward.close()
    assert rollouts.task_scores == [0.0, 1.0, 0.0, 1.0]  # two failures: fallback 0, the run goes on
    assert metrics["reward/raises_on_short/errors"] == 2.0
