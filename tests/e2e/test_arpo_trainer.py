"""ARPO hard attribution through the Trainer: per-token advantages, each shared prefix token trained once."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow

OBSERVE_ENV = """
from rlkit.envs import Environment, StepResult, register_env


@register_env("hard_observe")
class Observe(Environment):
    def step(self, action: str) -> StepResult:
        return StepResult(observation="noted")
"""


def test_hard_attribution_step(tiny_llama, parity_reward_module, tiny_run_overrides, tmp_path):
    from rlkit import Trainer, load_config

    (tmp_path / "hard_env.py").write_text(OBSERVE_ENV)
    overrides = tiny_run_overrides(tiny_llama, tmp_path, parity_reward_module, "arpo_hard") + [
        "trainer.total_steps=1", "trainer.save_final=false", "algorithm.attribution=hard",
        "env.name=hard_observe", f"env.module={tmp_path / 'hard_env.py'}", "env.params={}", "env.max_turns=3",
        "rollout.arpo.budget=4", "rollout.arpo.initial=2", "rollout.arpo.entropy_tokens=4",
        "rollout.arpo.alpha=1.0", "rollout.arpo.beta=0.0",  # always branch: shared prefixes for sure
    ]  # fmt: skip
    cfg = load_config(Path("examples/recipes/arpo.yaml"), overrides=overrides)
    with Trainer(cfg) as trainer:
        rollouts, metrics = trainer.collect_rollouts(cfg.trainer.prompts_per_step)
        assert metrics["arpo/branches"] == 2.0  # N=2, M=4, always branch: 2 forks per prompt
        batch = trainer.make_batch(rollouts)
        assert batch.advantages.shape == batch.response_mask.shape
        # every distinct sampled token is trained exactly once
        distinct = {}
        for c in rollouts.completions:
            for (uid, length), start in zip(c.info["segments"], _starts(c.info["segments"])):
                if any(c.info["loss_mask"][start : start + length]):
                    distinct[uid] = length
        assert int(batch.response_mask.sum()) == sum(distinct.values())
        held = sum(sum(c.info["loss_mask"]) for c in rollouts.completions)
        assert int(batch.response_mask.sum()) < held  # copies of shared prefixes were dropped
        out = trainer.update(batch)
    assert math.isfinite(out["loss"]) and out["grad_norm"] > 0
    assert torch.isfinite(batch.advantages).all()


def _starts(segments):
    col = 0
    for _, length in segments:
        yield col
        col += length
