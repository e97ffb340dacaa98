"""trainer.async (rlkit/rollout/overlap.py): config, staleness, admission, idle fractions, the
checkpointed sampler position, and the truncated-IS weights a stale batch is trained with."""

from __future__ import annotations

import math
import threading
from types import SimpleNamespace

import pytest
import torch

from rlkit.algorithms.rollout_correction import rollout_correction
from rlkit.config import ConfigError, ExperimentConfig, load_config
from rlkit.rollout.overlap import RolloutPipeline, idle_fractions, sample_staleness
from rlkit.rollout.types import Completion


def test_async_config_defaults_and_errors():
    cfg = load_config("examples/arithmetic_grpo.yaml")
    assert (cfg.trainer.async_.enabled, cfg.trainer.async_.max_staleness) == (False, 1)
    assert cfg.algorithm.rollout_correction.kind == "none"  # sync mode unchanged
    on = load_config("examples/arithmetic_grpo.yaml", overrides=["trainer.async.enabled=true"])
    assert on.trainer.async_.enabled and on.algorithm.rollout_correction.kind == "tis"  # async's default correction
    assert on.algorithm.rollout_correction.clip == 2.0
    import yaml

    again = ExperimentConfig.model_validate(yaml.safe_load(on.to_yaml()))  # run_dir/config.yaml reloads
    assert again.trainer.async_ == on.trainer.async_
    with pytest.raises(ConfigError, match="trainer.async.max_stalenes: unknown key"):
        load_config("examples/arithmetic_grpo.yaml", overrides=["trainer.async.max_stalenes=2"])
    with pytest.raises(ConfigError, match="trainer.async.max_staleness"):
        load_config("examples/arithmetic_grpo.yaml", overrides=["trainer.async.max_staleness=-1"])
    with pytest.raises(ConfigError, match="rollout_correction.kind must be tis or mis"):
        load_config("examples/arithmetic_grpo.yaml",
                    overrides=["trainer.async.enabled=true", "algorithm.rollout_correction.kind=none"])  # fmt: skip


def test_staleness_and_idle_fractions():
    assert sample_staleness([3, 3, None, 2], 4) == [1, 1, 2]  # None: a replayed answer, no version
    assert idle_fractions(step_s=10.0, learner_busy_s=4.0, engine_busy_s=7.5) == {
        "time/learner_idle_frac": 0.6, "time/engine_idle_frac": 0.25,
    }  # fmt: skip
    assert idle_fractions(step_s=2.0, learner_busy_s=3.0, engine_busy_s=0.0)["time/learner_idle_frac"] == 0.0


def test_truncated_is_weights_for_a_stale_batch():
    """Behaviour log-probs from the engines' older weights, old log-probs from the learners' current ones:
    ρ_t = exp(old_t − behaviour_t), w_t = min(ρ_t, 2)."""
    behaviour = torch.tensor([[-1.0, -2.0, -0.5, -3.0]])
    old = torch.tensor([[-0.9, -2.5, 0.3, -3.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    w = rollout_correction(behaviour, old, mask, kind="tis", level="token", clip=2.0)
    # exp(0.1) = 1.105171, exp(-0.5) = 0.606531, exp(0.8) = 2.225541 -> truncated to 2; padding: 1
    torch.testing.assert_close(w.weights, torch.tensor([[math.exp(0.1), math.exp(-0.5), 2.0, 1.0]]))
    assert w.over.tolist() == [[False, False, True, False]]
    torch.testing.assert_close(w.weights[0, :3], torch.tensor([1.1051709, 0.6065307, 2.0]))


class _Driver:
    """The parts of a Trainer the pipeline reads: step, weight version, sampler, collect_rollouts."""

    def __init__(self, total_steps: int = 5) -> None:
        self.step = 1
        self.stop_reason = None
        self.config = SimpleNamespace(trainer=SimpleNamespace(total_steps=total_steps))
        self.weight_sync = SimpleNamespace(version=0)
        self.position = 0
        self.sampler = SimpleNamespace(state_dict=lambda: {"position": self.position})
        self.calls: list[tuple[int | None, str]] = []

    def collect_rollouts(self, num_prompts: int, *, step: int | None = None):
        self.calls.append((step, threading.current_thread().name))
        self.position += num_prompts
        version = self.weight_sync.version
        completions = [Completion(0, [1], [0.0], "a", "stop", {"weight_version": version}) for _ in range(2)]
        return SimpleNamespace(completions=completions), {"time/generate_s": 0.5}


def test_pipeline_prefetches_the_next_step_and_checkpoints_the_sampler_before_it():
    d = _Driver(total_steps=3)
    p = RolloutPipeline(d, enabled=True, max_staleness=1)
    _, m1 = p.take(4)  # step 1: nothing prefetched, generated now with version 0
    assert m1["async/staleness_max"] == 0.0 and d.calls == [(None, "MainThread")]
    p.launch_next(4)  # step 2 generates with version 0 while step 1 trains
    assert p.wait() >= 0.0 and d.calls[1][0] == 2 and d.calls[1][1].startswith("rlkit-prefetch")
    assert p.sampler_state() == {"position": 4}  # a checkpoint now: step 2's prompts are drawn again on resume
    assert p.step_metrics(step_s=2.0, learner_busy_s=1.0) == {"time/learner_idle_frac": 0.5, "time/engine_idle_frac": 0.5}
    d.weight_sync.version, d.step = 1, 2  # step 1's sync
    _, m2 = p.take(4)
    assert (m2["async/staleness_mean"], m2["async/staleness_max"]) == (1.0, 1.0) and p.last_versions == [0, 0]
    assert len(d.calls) == 2  # taken from the prefetch, not generated again
    assert p.sampler_state() == {"position": 8}
    p.launch_next(4)
    p.wait()
    d.weight_sync.version, d.step = 2, 3
    p.take(4)
    p.launch_next(4)  # step 4 > total_steps: nothing launched
    assert len(d.calls) == 3 and p.wait() == 0.0
    p.close()


def test_admission_waits_rather_than_exceeding_max_staleness():
    d = _Driver()
    p = RolloutPipeline(d, enabled=True, max_staleness=0)
    p.take(2)
    p.launch_next(2)  # a prefetch would be trained one version later: refused
    assert p.wait() == 0.0 and len(d.calls) == 1
    d.weight_sync.version, d.step = 1, 2
    _, m = p.take(2)  # generated after the sync instead
    assert m["async/staleness_max"] == 0.0 and d.calls[-1] == (None, "MainThread")
    p.close()


def test_a_sample_past_the_bound_is_an_error_not_dropped():
    d = _Driver()
    p = RolloutPipeline(d, enabled=True, max_staleness=1)
    p.take(2)
    p.launch_next(2)
    p.wait()
    d.weight_sync.version, d.step = 2, 2  # two syncs since the prefetch sampled: staleness 2
    with pytest.raises(RuntimeError, match=r"step 2: a sample generated with weight version 0 would be trained at version 2 \(staleness 2 > "):
        p.take(2)
    p.close()
