"""examples/custom_env.py loads through env.module and plays as its docstring says."""

from __future__ import annotations

from rlkit.config import load_config


def test_custom_env_example_plays_a_game():
    cfg = load_config("examples/agentic_arithmetic.yaml", overrides=[
        "env.name=guess", "env.module=examples/custom_env.py", "env.renderer=chat", "env.observation_role=user",
        "env.params={penalty: 0.25}",
    ])  # fmt: skip
    env = cfg.env.env_class()(**cfg.env.params)
    env.reset({"answer": "12"})
    first = env.step("I think so.")
    assert (first.done, first.observation, first.info) == (False, "Answer with 'Guess: N'.", {"parse_error": True})
    assert env.step("Guess: 10").observation == "higher"
    assert env.step("Guess: 15").observation == "lower"
    last = env.step("Guess: 12")
    assert (last.done, last.reward) == (True, 1.0 - 0.25 * 3)
