"""The `math` reward on a table of tricky cases (each row: gold, completion, extract, score)."""

from __future__ import annotations

import pytest

from rlkit.rewards import RewardInputError
from rlkit.rewards.math import extract_answer, math_reward

TABLE = [
    # fractions vs decimals
    ("1/2", r"The answer is \boxed{0.5}", "auto", 1.0),
    ("0.5", r"\boxed{\frac{1}{2}}", "auto", 1.0),
    (r"\frac{1}{2}", r"\boxed{\frac12}", "auto", 1.0),
    (r"\frac13", r"\boxed{0.33}", "auto", 0.0),  # 0.33 is not 1/3 at 6 digits
    ("0.333333", r"\boxed{\frac13}", "auto", 1.0),
    (r"-\frac{1}{2}", r"\boxed{-0.5}", "auto", 1.0),
    # LaTeX forms
    (r"\sqrt{8}", r"\boxed{2\sqrt{2}}", "auto", 1.0),
    (r"\frac{\sqrt{2}}{2}", r"\boxed{\frac{1}{\sqrt2}}", "auto", 1.0),
    ("x^2+2x+1", r"\boxed{(x+1)^2}", "auto", 1.0),
    ("x=2", r"\boxed{2}", "auto", 1.0),
    # intervals and sets
    ("(1,2]", r"\boxed{(1, 2]}", "auto", 1.0),
    ("(1,2]", r"\boxed{[1,2]}", "auto", 0.0),
    (r"(-\infty, 0)", r"\boxed{(-\infty,0)}", "auto", 1.0),
    (r"\{1,2,3\}", r"\boxed{\{3,2,1\}}", "auto", 1.0),
    (r"\{1,2,3\}", r"\boxed{\{1,2\}}", "auto", 0.0),
    # percentages and units
    (r"50\%", r"\boxed{50\%}", "auto", 1.0),
    ("0.5", r"\boxed{50\%}", "auto", 1.0),
    ("5", r"\boxed{5\text{ cm}}", "auto", 1.0),
    ("10", r"\boxed{10^\circ}", "auto", 1.0),
    ("6", r"\boxed{\$6}", "auto", 1.0),
    ("1000", r"\boxed{1,000}", "auto", 1.0),
    # negative numbers
    ("-3", "so x = -3", "auto", 1.0),
    ("3", r"\boxed{-3}", "auto", 0.0),
    ("-7", "we get -7", "last_number", 1.0),
    # multiple boxed answers: all boxes form one set, so hedging is not rewarded
    ("2", r"\boxed{1} then \boxed{2}", "auto", 0.0),
    ("5", r"First \boxed{3}, wait, final: \boxed{5}", "auto", 0.0),
    (r"\{1,2\}", r"\boxed{1} and \boxed{2}", "auto", 1.0),
    # answer tags and extraction modes
    ("5", "<think>maybe 4</think><answer>5</answer>", "auto", 1.0),
    ("5", r"<answer>5</answer> but \boxed{4}", "auto", 1.0),
    ("4", r"<answer>5</answer> but \boxed{4}", "boxed", 1.0),
    ("5", "the final answer is 5.", "auto", 1.0),
    ("5", "the final answer is 5.", "boxed", 0.0),
    ("5", "the final answer is 5.", "answer_tag", 0.0),
    ("12", "so 7+5 = 12, total 1,212? no: 12", "last_number", 1.0),
    ("1212", "total 1,212", "last_number", 1.0),
    ("2.5", "about 2.5 units", "last_number", 1.0),
    # nothing to extract
    ("5", "", "auto", 0.0),
    ("5", "no numbers here", "auto", 0.0),
]


@pytest.mark.parametrize(("gold", "completion", "extract", "score"), TABLE)
def test_tricky_cases(gold, completion, extract, score):
    result = math_reward(completion, {"answer": gold}, extract=extract)
    assert (result.score, result.error) == (score, None)


def test_info_shows_what_was_extracted():
    assert math_reward(r"\boxed{\frac12}", {"answer": "0.5"}).info == {"extracted": r"\frac{1}{2}"}
    assert math_reward("nothing", {"answer": "0.5"}).info == {"extracted": None}


def test_numeric_gold_and_custom_answer_key():
    assert math_reward(r"\boxed{42}", {"solution": 42}, answer_key="solution").score == 1.0


def test_only_the_tail_is_searched():
    text = r"\boxed{7}" + " filler" * 100  # 709 characters
    assert math_reward(text, {"answer": "7"}, extract="boxed").score == 1.0
    assert math_reward(text, {"answer": "7"}, extract="boxed", tail_chars=100).score == 0.0
    assert extract_answer(text, extract="boxed", tail_chars=100) == ([], None)


@pytest.mark.parametrize(
    ("sample", "message"),
    [
        ({}, "sample has no 'answer' field; fields: (none)"),
        ({"answer": None}, "sample['answer'] is None"),
        ({"answer": "  "}, "sample['answer'] is empty"),
        ({"answer": [1, 2]}, "sample['answer'] must be a string, got list"),
        ({"answer": "$$"}, "reference answer '$$' could not be parsed"),
        ({"answer": "1" * 1001}, "reference answer is 1001 characters (limit 1000)"),
    ],
)
def test_bad_samples_raise_input_errors(sample, message):
    with pytest.raises(RewardInputError) as e:
        math_reward(r"\boxed{1}", sample)
    assert str(e.value) == message
