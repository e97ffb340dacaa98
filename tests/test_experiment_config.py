"""Config loading: errors name the dotted key and what was expected; overrides and base: work."""

from __future__ import annotations

import pytest

from rlkit.cli import main as cli_main
from rlkit.config import ConfigError, load_config

DEMO = "examples/arithmetic_grpo.yaml"


def test_demo_config_loads_with_typed_overrides():
    cfg = load_config(DEMO, overrides=["trainer.total_steps=5", "learner.lr=2e-5", 'rollout.stop=["\\n\\n"]'])
    assert cfg.trainer.total_steps == 5 and isinstance(cfg.trainer.total_steps, int)
    assert cfg.learner.lr == pytest.approx(2e-5)
    assert cfg.rollout.stop == ["\n\n"]
    assert cfg.reward.name == "arithmetic"


def test_unknown_nested_key_names_path_and_valid_keys():
    with pytest.raises(ConfigError) as err:
        load_config(DEMO, overrides=["learner.lrr=3"])
    msg = str(err.value)
    assert "learner.lrr: unknown key" in msg
    assert "valid keys here: world_size, backend, lr," in msg


def test_bad_value_names_path_and_input():
    with pytest.raises(ConfigError, match=r"rollout\.group_size: .*integer.*'abc'"):
        load_config(DEMO, overrides=["rollout.group_size=abc"])
    with pytest.raises(ConfigError, match=r"rollout\.temperature: Input should be greater than 0"):
        load_config(DEMO, overrides=["rollout.temperature=0"])
    with pytest.raises(ConfigError, match=r"learner\.lr_schedule: Input should be 'constant' or 'cosine'"):
        load_config(DEMO, overrides=["learner.lr_schedule=linear"])


def test_every_error_is_reported_at_once():
    with pytest.raises(ConfigError) as err:
        load_config(DEMO, overrides=["learner.lrr=3", "rollout.group_size=abc", "bogus=1"])
    lines = str(err.value).splitlines()[1:]
    assert len(lines) == 3
    assert any(line.strip().startswith("bogus: unknown key") for line in lines)


def test_loss_param_typo_lists_accepted_params():
    with pytest.raises(ConfigError, match=r"clip_hgh.*accepted: clip_low, clip_high, dual_clip"):
        load_config(DEMO, overrides=["algorithm.loss=gppo", "algorithm.params={clip_hgh: 0.3}"])


def test_unknown_reward_lists_known_rewards():
    with pytest.raises(ConfigError, match=r"reward.*nonexistent.*arithmetic"):
        load_config(DEMO, overrides=["reward.name=nonexistent"])


def test_recipe_inherits_from_base():
    cfg = load_config("examples/recipes/klear_gppo.yaml")
    assert cfg.algorithm.loss == "gppo" and cfg.algorithm.sft_coef == 0.1
    assert cfg.algorithm.params["dual_clip"] == 10.0
    assert cfg.model.path == "embedded:smollm2-135m-instruct"  # from the base
    assert cfg.trainer.prompts_per_generation == 16


def test_missing_file_and_bad_override_syntax(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="expected dotted.key=value"):
        load_config(DEMO, overrides=["trainer.total_steps"])
    with pytest.raises(ConfigError, match="trainer.total_steps is not a section"):
        load_config(DEMO, overrides=["trainer.total_steps.x=1"])


def test_circular_base_is_reported(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match="circular base"):
        load_config(tmp_path / "a.yaml")


def test_cli_reports_config_errors_before_starting_anything(capsys):
    assert cli_main(["train", DEMO, "learner.lrr=3"]) == 2
    assert "learner.lrr: unknown key" in capsys.readouterr().err


def test_cli_print_config_shows_resolved_values(capsys):
    assert cli_main(["train", DEMO, "trainer.total_steps=7", "--print-config"]) == 0
    assert "total_steps: 7" in capsys.readouterr().out


def test_replay_section_is_typed_and_checked(capsys):
    cfg = load_config(DEMO, overrides=["replay.pool=pool.jsonl", "replay.per_prompt=3"])
    assert (cfg.replay.pool, cfg.replay.per_prompt) == ("pool.jsonl", 3)
    assert load_config(DEMO).replay.pool is None  # replay is off unless a pool is given
    assert cli_main(["collect-pool", DEMO, "replay.per_prompt=0", "--checkpoint", "x", "--out", "y"]) == 2
    assert "replay.per_prompt" in capsys.readouterr().err


def test_replay_with_a_kl_reward_is_refused_at_load():
    with pytest.raises(ConfigError, match="KL reward needs the sampling log-probs"):
        load_config(DEMO, overrides=["replay.pool=p.jsonl", "algorithm.kl.coef=0.01", "algorithm.kl.target=reward"])
    assert load_config(DEMO, overrides=["replay.pool=p.jsonl", "algorithm.kl.coef=0.01"]).algorithm.kl.target == "loss"


def test_validation_with_an_env_loads_and_reads_held_out_prompts():
    # multi-turn evaluation runs whole episodes: tests/e2e/test_multiturn_eval.py
    cfg = load_config("examples/agentic_arithmetic.yaml", ["eval.every=5"])
    assert cfg.eval.every == 5 and cfg.eval.split_for(cfg.data) == "test" != cfg.data.split
