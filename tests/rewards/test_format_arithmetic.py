"""The `format` (tag structure, length shaping) and `arithmetic` (exact integer) rewards."""

from __future__ import annotations

import pytest

from rlkit.rewards import RewardInputError
from rlkit.rewards.arithmetic import arithmetic_reward, extract_int
from rlkit.rewards.format import check_structure, format_reward, length_factor

GOOD = "<think>7 + 5 is 12</think>\n<answer>12</answer>"


@pytest.mark.parametrize(
    ("completion", "strict", "problem"),
    [
        (GOOD, True, None),
        ("intro " + GOOD, False, None),
        ("intro " + GOOD, True, "text outside the required tags"),
        (GOOD + " outro", True, "text outside the required tags"),
        ("<answer>12</answer><think>x</think>", False, "<answer> must come after </think>"),
        ("<think>a</think><think>b</think><answer>1</answer>", False, "<think> appears 2 times (expected once)"),
        ("<think>a</think>", False, "<answer> appears 0 times (expected once)"),
        ("<think>a<answer>1</answer></think>", False, "<answer> must come after </think>"),
        ("</think>a<think><answer>1</answer>", False, "</think> comes before <think>"),
    ],
)
def test_structure(completion, strict, problem):
    assert check_structure(completion, tags=("think", "answer"), strict=strict) == problem
    result = format_reward(completion, {}, strict=strict)
    assert result.score == (1.0 if problem is None else 0.0)
    assert result.info["structure_ok"] is (problem is None)


def test_custom_tags():
    assert format_reward("<reasoning>r</reasoning>", {}, tags=("reasoning",)).score == 1.0
    with pytest.raises(ValueError, match="tags must be non-empty tag names"):
        format_reward("x", {}, tags=("bad tag",))


@pytest.mark.parametrize(
    ("length", "soft", "hard", "factor"),
    [(10, None, None, 1.0), (100, 50, 150, 0.5), (50, 50, 150, 1.0), (125, 50, 150, 0.25), (151, 50, 150, 0.0),
     (150, 50, 150, 0.0), (200, None, 150, 0.0), (150, None, 150, 1.0)],
)  # fmt: skip
def test_length_factor(length, soft, hard, factor):
    assert length_factor(length, soft_max_chars=soft, max_chars=hard) == factor


def test_length_shaping_multiplies_structure_score():
    padded = GOOD + " " * (100 - len(GOOD))  # 100 chars, half-way between 50 and 150
    result = format_reward(padded, {}, soft_max_chars=50, max_chars=150)
    assert (result.score, result.info["length_factor"]) == (0.5, 0.5)
    with pytest.raises(ValueError, match="soft_max_chars=50 needs max_chars >= it"):
        format_reward(GOOD, {}, soft_max_chars=50)


@pytest.mark.parametrize(
    ("text", "extract", "value"),
    [
        ("7 + 5 = 12\nAnswer: 12", "answer_tag", 12),
        ("Answer: 3 ... Answer:  -4", "answer_tag", -4),
        ("12", "answer_tag", None),
        ("answer: 12", "answer_tag", None),  # the tag is case-sensitive, as in the demo
        ("7 + 5 = 12", "last_int", 12),
        ("x is -3 or 4", "last_int", 4),
        ("none", "last_int", None),
    ],
)
def test_extract_int(text, extract, value):
    assert extract_int(text, extract=extract) == value


def test_arithmetic_scores():
    assert arithmetic_reward("7 + 5 = 12\nAnswer: 12", {"answer": 12}).score == 1.0
    assert arithmetic_reward("7 + 5 = 12\nAnswer: 13", {"answer": "12"}).score == 0.0
    assert arithmetic_reward("7 + 5 = 12", {"answer": "12"}).score == 0.0
    assert arithmetic_reward("7 + 5 = 12", {"answer": "12"}, extract="last_int").score == 1.0
    assert arithmetic_reward("Answer: -6", {"answer": " -6 "}).info == {"extracted": -6}


def test_arithmetic_bad_samples():
    with pytest.raises(RewardInputError, match="sample has no 'answer' field; fields: question"):
        arithmetic_reward("Answer: 1", {"question": "1+0"})
    with pytest.raises(RewardInputError, match="sample\\['answer'\\]='1.5' is not an integer"):
        arithmetic_reward("Answer: 1", {"answer": "1.5"})
