"""The `arpo` reward: -1 on bad format, else word-level F1 / exact match of the boxed answer, +0.1 with several tools."""

from __future__ import annotations

import pytest

from rlkit.rewards import get_reward

arpo = get_reward("arpo")
GOOD = "<think>find it</think> <search>capital of France</search> <result>\nParis is the capital.\n</result>"


@pytest.mark.parametrize(
    ("completion", "score", "why"),
    [
        (GOOD + "<answer>\\boxed{Paris}</answer>", 1.0, None),
        (GOOD + "<python>print(1)</python> <result>\n1\n</result><answer>\\boxed{Paris}</answer>", 1.1, None),
        (GOOD + "<python>print(1)</python><answer>\\boxed{Lyon}</answer>", 0.0, None),  # no bonus at score 0
        # normalised prediction "paris france" (article dropped): P = 1/2, R = 1, F1 = 2/3
        (GOOD + "<answer>\\boxed{the Paris France}</answer>", 2 / 3, None),
        (GOOD + "<answer>Paris</answer>", -1.0, "no \\boxed{} in <answer>"),
        (GOOD, -1.0, "0 <answer> blocks (expected 1)"),
        ("<think>a<answer>\\boxed{Paris}</answer></think>", -1.0, "<answer> opened inside <think>"),
        ("</python><answer>\\boxed{Paris}</answer>", -1.0, "</python> without an open <python>"),
        ("<search>x <answer>\\boxed{Paris}</answer>", -1.0, "<answer> opened inside <search>"),
    ],
)
def test_arpo_reward(completion, score, why):
    result = arpo(completion, {"answer": "Paris"})
    assert result.score == pytest.approx(score)
    assert result.info.get("format") == why


def test_exact_match_and_gold_lists():
    done = "<answer>\\boxed{Paris!}</answer>"
    assert arpo(done, {"answer": ["Lyon", "paris"]}, metric="em").score == 1.0
    assert arpo("<answer>\\boxed{Paris city}</answer>", {"answer": "Paris"}, metric="em").score == 0.0
    assert arpo("<answer>\\boxed{\\frac{1}{2}}</answer>", {"answer": "\\frac{1}{2}"}, metric="em").score == 1.0
