"""Config-load checks and driver rules that keep a run training what the papers train (issue 10).

Fast: no Ray, no engine. Each test fails on the code before the fix it covers.
"""

from __future__ import annotations

import types
from pathlib import Path

import pytest

from rlkit.config import ConfigError, load_config

DEMO = "examples/arithmetic_grpo.yaml"
RECIPES = sorted(Path("examples/recipes").glob("*.yaml"))


# ---------------------------------------------------------------- finding 3: top-p / top-k


def test_truncated_sampling_loads_and_reaches_the_learners():
    """top-p / top-k are no longer refused: the learners apply the same truncation (the log-probs are
    checked against vLLM's in tests/algorithms/test_truncated_logprobs.py and tests/e2e/test_top_p_step.py)."""
    cfg = load_config(DEMO, overrides=["rollout.top_p=0.9", "rollout.top_k=20"])
    assert (cfg.rollout.top_p, cfg.rollout.top_k) == (0.9, 20)
    trainer_source = Path("rlkit/trainer.py").read_text()
    assert "top_p=cfg.rollout.top_p, top_k=cfg.rollout.top_k" in trainer_source  # into the LearnerSpec


# ---------------------------------------------------------------- finding 10: cross-field checks


def test_prompt_plus_response_must_fit_the_model_length():
    with pytest.raises(ConfigError, match=r"data.max_prompt_tokens \(256\) \+ rollout.max_new_tokens \(800\) = 1056 "
                                          r"exceeds rollout.max_model_len \(1024\)"):
        load_config(DEMO, overrides=["rollout.max_new_tokens=800"])
    assert load_config(DEMO, overrides=["rollout.max_new_tokens=768"]).rollout.max_new_tokens == 768  # 1024 exactly


def test_overlong_shaping_that_can_never_apply_is_refused():
    base = [f"algorithm.overlong.{k}" for k in ("enabled=true", "max_len=20480", "cache_len=4096")]
    with pytest.raises(ConfigError, match=r"max_len - cache_len = 20480 - 4096 = 16384 tokens, but responses stop at "
                                          r"rollout.max_new_tokens=32, so it can never apply"):
        load_config(DEMO, overrides=base)
    # 32 - 8 = 24 < 32: responses of 25..32 tokens are penalised
    ok = load_config(DEMO, overrides=[base[0], "algorithm.overlong.max_len=32", "algorithm.overlong.cache_len=8"])
    assert ok.algorithm.overlong.max_len == 32
    with pytest.raises(ConfigError, match="can never apply"):  # 32 - 0 = 32: not even a 32-token response
        load_config(DEMO, overrides=[base[0], "algorithm.overlong.max_len=32", "algorithm.overlong.cache_len=0"])


def test_generation_batch_without_dynamic_sampling_is_refused():
    with pytest.raises(ConfigError, match=r"trainer.prompts_per_generation=16 is only for dynamic sampling"):
        load_config(DEMO, overrides=["trainer.prompts_per_generation=16"])
    cfg = load_config(DEMO, overrides=["trainer.prompts_per_generation=16", "algorithm.dynamic_sampling.enabled=true"])
    assert cfg.trainer.prompts_per_generation == 16


# ---------------------------------------------------------------- finding 7: finite refill cap


def test_dynamic_sampling_refill_cap_is_finite():
    cfg = load_config(DEMO, overrides=["algorithm.dynamic_sampling.enabled=true"])
    assert cfg.algorithm.dynamic_sampling.max_gen_batches == 8
    with pytest.raises(ConfigError, match=r"max_gen_batches: Input should be greater than or equal to 1"):
        load_config(DEMO, overrides=["algorithm.dynamic_sampling.max_gen_batches=0"])


# ---------------------------------------------------------------- finding 6 / 5: new keys


def test_skip_and_correction_defaults_and_bad_values():
    cfg = load_config(DEMO)
    assert cfg.trainer.max_skipped_steps == 3
    rc = cfg.algorithm.rollout_correction
    assert (rc.kind, rc.level, rc.clip) == ("none", "token", 2.0)
    with pytest.raises(ConfigError, match=r"algorithm.rollout_correction.kind: Input should be 'none', 'tis' or 'mis'"):
        load_config(DEMO, overrides=["algorithm.rollout_correction.kind=is"])
    with pytest.raises(ConfigError, match=r"algorithm.rollout_correction.clip: Input should be greater than 0"):
        load_config(DEMO, overrides=["algorithm.rollout_correction.clip=0"])
    with pytest.raises(ConfigError, match=r"trainer.max_skipped_steps: Input should be greater than or equal to 1"):
        load_config(DEMO, overrides=["trainer.max_skipped_steps=0"])


# ---------------------------------------------------------------- finding 1: recipes are not on-policy


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_every_recipe_trains_off_policy_with_a_cited_ratio(recipe):
    from rlkit.trainer import on_policy_warning

    cfg = load_config(recipe)
    assert cfg.trainer.num_mini_batches * cfg.trainer.ppo_epochs > 1
    text = recipe.read_text()
    assert "num_mini_batches:" in text and "mini-batch" in text  # the number and its source, side by side
    assert on_policy_warning(cfg) is None


def test_clip_loss_on_policy_warns():
    from rlkit.trainer import on_policy_warning

    assert on_policy_warning(load_config(DEMO)) is None  # the demo's two mini-batches
    warning = on_policy_warning(load_config(DEMO, overrides=["trainer.num_mini_batches=1"]))  # ppo_clip, 1 epoch, 1 mini-batch
    assert warning is not None and warning.startswith(
        "algorithm.loss=ppo_clip runs fully on-policy (trainer.ppo_epochs=1, trainer.num_mini_batches=1)"
    )
    assert on_policy_warning(load_config(DEMO, overrides=["trainer.num_mini_batches=2"])) is None
    assert on_policy_warning(load_config(DEMO, overrides=["trainer.ppo_epochs=2"])) is None


# ---------------------------------------------------------------- finding 2: SFT selection


def test_sft_threshold_defaults_to_the_rewards_success_score():
    assert load_config(DEMO).sft_threshold == 1.0  # arithmetic: 1.0 when correct
    both = load_config(DEMO, overrides=[
        "reward.name=null", "reward.params={}",
        "reward.components=[{name: arithmetic, params: {extract: answer_tag}}, {name: format, weight: 0.1, params: {tags: [answer]}}]",
    ])  # fmt: skip
    assert both.sft_threshold == pytest.approx(1.1)  # correct plus the format bonus
    penalty = load_config(DEMO, overrides=[
        "reward.name=null", "reward.params={}",
        "reward.components=[{name: arithmetic, params: {extract: answer_tag}}, {name: format, weight: -0.5, params: {tags: [answer]}}]",
    ])  # fmt: skip
    assert penalty.sft_threshold == 1.0  # a penalty component adds nothing to success
    assert load_config(DEMO, overrides=["algorithm.sft_threshold=0.8"]).sft_threshold == 0.8


def _rollouts(task_scores):
    from rlkit.rollout.types import Completion
    from rlkit.trainer import Rollouts

    n = len(task_scores)
    return Rollouts(
        rows=[{}] * n, prompt_ids=[[5, 6]] * n,
        completions=[Completion(prompt_index=0, token_ids=[7, 8], logprobs=[-1.0, -1.0], text="x", finish_reason="stop")] * n,
        group_ids=[0] * n, task_scores=list(task_scores), rewards=list(task_scores),
    )  # fmt: skip


def _driver(cfg):
    """The real Trainer methods on a driver without engines or learners (make_batch needs neither here)."""
    from rlkit.trainer import Trainer

    trainer = Trainer.__new__(Trainer)
    trainer.config, trainer.step, trainer.agent = cfg, 1, None
    trainer.tokenizer = types.SimpleNamespace(pad_token_id=0)
    return trainer


def test_sft_selects_by_threshold_not_equality():
    cfg = load_config(DEMO, overrides=[
        "reward.name=null", "reward.params={}",
        "reward.components=[{name: arithmetic, params: {extract: answer_tag}}, {name: format, weight: 0.1, params: {tags: [answer]}}]",
    ])  # fmt: skip
    # correct + format bonus, correct without format, correct with a partial format score, wrong + format
    batch = _driver(cfg).make_batch(_rollouts([1.1, 1.0, 1.05, 0.1]))
    assert batch.sft_select.tolist() == [True, False, False, False]
    single = _driver(load_config(DEMO)).make_batch(_rollouts([1.0, 0.0, 1.0, 0.0]))
    assert single.sft_select.tolist() == [True, False, True, False]
    custom = _driver(load_config(DEMO, overrides=["algorithm.sft_threshold=0.5"])).make_batch(_rollouts([0.6, 0.4, 1.0, 0.0]))
    assert custom.sft_select.tolist() == [True, False, True, False]


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_recipe_moves_the_policy_no_further_per_step_than_its_base(recipe):
    """lr x optimizer steps per batch (num_mini_batches x ppo_epochs) at most its base config's (+5%):
    GPPO-type losses keep clipped tokens' gradients, so only the step size bounds how far a step moves
    the policy (tests/algorithms/test_loss_properties.py::test_repeated_steps_stop_at_the_clip_under_ppo_clip_but_not_under_gppo);
    at 8 x 2e-5 they collapse on the demo task (README, benchmarks/loss_variants.py)."""
    import yaml

    def movement(cfg):
        return cfg.learner.lr * cfg.trainer.num_mini_batches * cfg.trainer.ppo_epochs

    base = load_config(recipe.parent / yaml.safe_load(recipe.read_text())["base"])
    assert movement(load_config(recipe)) <= 1.05 * movement(base)
