"""RewardConfig: names, parameters, components and user modules are checked at load."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from rlkit.rewards import RewardConfig, get_reward, list_rewards, unregister_reward


def _message(excinfo) -> str:
    return excinfo.value.errors()[0]["msg"]


def test_single_reward_resolves_to_one_component():
    cfg = RewardConfig(name="arithmetic", params={"extract": "last_int"})
    [component] = cfg.resolved_components()
    assert (component.name, component.weight, component.params) == ("arithmetic", 1.0, {"extract": "last_int"})
    assert cfg.timeout_s == 5.0 and cfg.fallback_score == 0.0 and cfg.workers is None


def test_unknown_name_lists_known_rewards():
    with pytest.raises(ValidationError) as e:
        RewardConfig(name="nope")
    assert _message(e).startswith("Value error, unknown reward 'nope'; known rewards: arithmetic, ")


def test_unknown_param_names_key_and_accepted_ones():
    with pytest.raises(ValidationError) as e:
        RewardConfig(name="arithmetic", params={"extrac": "answer_tag"})
    assert _message(e) == "Value error, reward 'arithmetic' has no parameter 'extrac'; accepted: answer_key, extract"


def test_bad_param_value_fails_at_load():
    with pytest.raises(ValidationError, match="reward 'arithmetic' parameter 'extract'='tag'"):
        RewardConfig(name="arithmetic", params={"extract": "tag"})


def test_component_params_are_checked_too():
    with pytest.raises(ValidationError, match="reward 'format' has no parameter 'tag'; accepted: max_chars, "):
        RewardConfig(components=[{"name": "math"}, {"name": "format", "params": {"tag": ["x"]}}])


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "give exactly one of `name`"),
        ({"name": "math", "components": [{"name": "format"}]}, "give exactly one of `name`"),
        ({"components": [{"name": "math"}], "params": {"extract": "boxed"}}, "`params` belongs to a single `name`"),
        ({"components": [{"name": "math"}, {"name": "math"}]}, "components name the same reward twice: math"),
        ({"name": "math", "timeout_s": 0}, "greater than 0"),
        ({"name": "math", "workers": 0}, "greater than or equal to 1"),
        ({"name": "math", "fallback_score": float("nan")}, "fallback_score must be finite"),
        ({"name": "math", "extra_key": 1}, "Extra inputs are not permitted"),
        ({"components": [{"name": "math", "weight": float("inf")}]}, "weight must be finite"),
    ],
)
def test_invalid_configs(fields, message):
    with pytest.raises(ValidationError, match=message):
        RewardConfig(**fields)


def test_own_timeout_must_be_below_pool_timeout():
    with pytest.raises(ValidationError) as e:
        RewardConfig(name="lean", params={"repl_cmd": ["repl"]}, timeout_s=30)
    assert "reward 'lean' has its own timeout_s=60.0, which must be below reward.timeout_s=30.0" in _message(e)
    ok = RewardConfig(name="lean", params={"repl_cmd": ["repl"], "timeout_s": 20}, timeout_s=30)
    assert ok.params == {"repl_cmd": ["repl"], "timeout_s": 20.0}


def test_user_module_file_registers_its_rewards(tmp_path):
    path = tmp_path / "cfg_user_rewards.py"
    path.write_text(
        "from rlkit.rewards import register_reward\n\n"
        "@register_reward('t_cfg_user')\n"
        "def shout(completion: str, sample: dict, *, word: str = 'HI') -> float:\n"
        "    return float(word in completion)\n"
    )
    try:
        cfg = RewardConfig(name="t_cfg_user", params={"word": "YO"}, module=str(path))
        assert cfg.module_source.name == "cfg_user_rewards"
        assert cfg.module_source.source == path.read_text()
        assert get_reward("t_cfg_user")("YO!", {}, word="YO") == 1.0
        assert get_reward("t_cfg_user")("YO!", {}) == 0.0
        with pytest.raises(ValidationError, match="reward 't_cfg_user' has no parameter 'wrd'; accepted: word"):
            RewardConfig(name="t_cfg_user", params={"wrd": "YO"}, module=str(path))
    finally:
        if "t_cfg_user" in list_rewards():
            unregister_reward("t_cfg_user")


def test_missing_module_file_fails_at_load(tmp_path):
    with pytest.raises(ValidationError, match="cannot load reward module .*FileNotFoundError: .*nowhere.py' does"):
        RewardConfig(name="math", module=str(tmp_path / "nowhere.py"))


def test_module_that_fails_to_import_fails_at_load(tmp_path):
    path = tmp_path / "cfg_broken_rewards.py"
    path.write_text("raise RuntimeError('broken on purpose')\n")
    with pytest.raises(ValidationError, match="cannot load reward module .*RuntimeError: broken on purpose"):
        RewardConfig(name="math", module=str(path))
