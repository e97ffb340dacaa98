"""The reward registry: registration, lookup, parameter checks, RewardResult validation."""

from __future__ import annotations

import math

import pytest

from rlkit.rewards import RewardResult, UnknownRewardError, get_reward, list_rewards, register_reward, unregister_reward
from rlkit.rewards.registry import check_params, reward_params, to_result


def test_builtins_are_registered():
    assert {"math", "format", "arithmetic", "lean"} <= set(list_rewards())


def test_register_get_and_unregister():
    @register_reward("t_registry_demo")
    def demo(completion: str, sample: dict, *, bonus: float = 0.5) -> float:
        return 1.0 + bonus

    try:
        assert get_reward("t_registry_demo") is demo
        assert demo("x", {}) == 1.5
    finally:
        unregister_reward("t_registry_demo")
    assert "t_registry_demo" not in list_rewards()


def test_duplicate_name_with_a_different_function_is_rejected():
    def other(completion: str, sample: dict) -> float:
        return 0.0

    with pytest.raises(ValueError, match="reward 'math' is already registered by rlkit.rewards.math.math_reward"):
        register_reward("math")(other)
    assert get_reward("math").__module__ == "rlkit.rewards.math"


def test_unknown_name_lists_known_ones():
    with pytest.raises(UnknownRewardError) as e:
        get_reward("maths")
    assert str(e.value).startswith("unknown reward 'maths'; known rewards: ")
    assert "arithmetic, " in str(e.value) and "math" in str(e.value)
    assert isinstance(e.value, ValueError) and isinstance(e.value, KeyError)


def test_signature_must_be_completion_sample_then_keywords():
    def positional_param(completion, sample, scale):
        return 0.0

    with pytest.raises(TypeError, match="exactly \\(completion, sample\\)"):
        register_reward("t_bad_signature")(positional_param)
    assert "t_bad_signature" not in list_rewards()


def test_check_params_names_bad_key_and_accepted_ones():
    with pytest.raises(ValueError) as e:
        check_params("math", {"extrct": "boxed"})
    assert str(e.value) == (
        "reward 'math' has no parameter 'extrct'; accepted: answer_key, extract, float_rounding, max_answer_chars, "
        "tail_chars"
    )


def test_check_params_validates_and_coerces_types():
    assert check_params("format", {"tags": ["a", "b"], "max_chars": "12"}) == {"tags": ("a", "b"), "max_chars": 12}
    with pytest.raises(ValueError, match="reward 'math' parameter 'extract'='boxd'"):
        check_params("math", {"extract": "boxd"})
    with pytest.raises(ValueError, match="reward 'lean' requires parameter 'repl_cmd'"):
        check_params("lean", {})


def test_reward_params_of_a_kwargs_function_is_none():
    def open_ended(completion, sample, **params):
        return 0.0

    assert reward_params(open_ended) is None
    assert set(reward_params(get_reward("arithmetic"))) == {"extract", "answer_key"}


def test_reward_result_validation():
    assert RewardResult(1).score == 1.0 and isinstance(RewardResult(1).score, float)
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError, match="finite"):
            RewardResult(bad)
    with pytest.raises(TypeError):
        RewardResult(True)
    with pytest.raises(TypeError):
        RewardResult("1.0")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-empty"):
        RewardResult(0.0, error="")


def test_to_result_accepts_numbers_and_results_only():
    assert to_result(3) == RewardResult(3.0)
    kept = RewardResult(0.5, info={"k": 1})
    assert to_result(kept) is kept
    with pytest.raises(TypeError, match="reward returned NoneType"):
        to_result(None)
    with pytest.raises(TypeError, match="reward returned bool"):
        to_result(True)
