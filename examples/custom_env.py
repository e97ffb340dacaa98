"""A user environment in a few lines: a number-guessing game with verifier feedback.

Name this file in a config (``env: {name: guess, module: examples/custom_env.py}``); rlkit loads it in
the driver like a reward module. The model answers ``Guess: N``; the environment says "higher" or
"lower" (a masked user turn through the chat template) until it is right or ``env.max_turns`` runs
out; its reward replaces the configured reward's score. Try it:

    rlkit train examples/agentic_arithmetic.yaml env.name=guess env.module=examples/custom_env.py \
        env.renderer=chat env.observation_role=user env.params={} reward.name=arithmetic
"""

from __future__ import annotations

import re

from rlkit.envs import Environment, StepResult, register_env

_GUESS = re.compile(r"Guess:\s*(-?\d+)")


@register_env("guess")
class GuessTheAnswer(Environment):
    """Plays against the row's ``answer``; reward 1.0 for a right guess, minus 0.1 per extra turn."""

    def __init__(self, *, penalty: float = 0.1) -> None:
        self.penalty, self.turns, self.target = penalty, 0, None

    def reset(self, sample: dict) -> None:
        self.target = int(sample["answer"])
        return None  # keep the data config's prompt rendering

    def step(self, action: str) -> StepResult:
        self.turns += 1
        found = _GUESS.findall(action)
        if not found:
            return StepResult(observation="Answer with 'Guess: N'.", reward=0.0, info={"parse_error": True})
        guess = int(found[-1])
        if guess == self.target:
            return StepResult(done=True, reward=1.0 - self.penalty * (self.turns - 1))
        return StepResult(observation="higher" if guess < self.target else "lower", reward=0.0)
