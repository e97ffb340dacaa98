"""`math`: is the completion's final answer equivalent to ``sample["answer"]``? (math-verify)

Extraction (``extract``):

- ``auto``: the last ``<answer>...</answer>`` if there is one, else math-verify's
  extraction over the completion with ``\\boxed{}`` first, then "final answer is"
  anchors, then the last LaTeX/plain expression;
- ``boxed``: only ``\\boxed{}``/``\\fbox{}`` (several boxes form a set);
- ``answer_tag``: only the last ``<answer>...</answer>``;
- ``last_number``: the last number in the text (thousands commas allowed).

Equivalence is math-verify's ``verify`` (symbolic and numeric: 1/2 = 0.5 =
\\frac{1}{2}; intervals, sets, percentages, units). Only the last ``tail_chars``
characters are searched, because extraction cost grows faster than linearly with
length. math-verify's own ``signal.alarm`` timeouts are off: run this reward
through ``score_batch``/the worker pool, whose per-item timeout works anywhere.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Literal

from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

from rlkit.rewards.registry import RewardResult, register_reward
from rlkit.rewards.samples import RewardInputError, require_str

logging.getLogger("math_verify").setLevel(logging.ERROR)

Extract = Literal["auto", "boxed", "answer_tag", "last_number"]

_LATEX_FIRST = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
_BOXED_ONLY = [LatexExtractionConfig(boxed_match_priority=0, try_extract_without_anchor=False)]
_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")


def _parse(text: str, config: list) -> list:
    return parse(text, config, parsing_timeout=None)


def parse_gold(answer: str) -> list:
    """math-verify's parse of a reference answer, read as LaTeX first (``(1,2]``, ``\\{1,2\\}``)."""
    parsed = _parse(f"${answer}$", _LATEX_FIRST) or _parse(answer, _LATEX_FIRST)
    if not parsed:
        raise RewardInputError(f"reference answer {answer!r} could not be parsed")
    return parsed


def extract_answer(completion: str, *, extract: Extract = "auto", tail_chars: int = 4000) -> tuple[list, str | None]:
    """(math-verify parse, the text it came from) of the completion's final answer; ([], None) if none."""
    text = completion[-tail_chars:]
    tag = None
    if extract in ("auto", "answer_tag"):
        for tag in _ANSWER_TAG.finditer(text):
            pass
        if tag is not None:
            inner = tag.group(1).strip()
            return (_parse(inner, _LATEX_FIRST) or _parse(f"${inner}$", _LATEX_FIRST)), inner
        if extract == "answer_tag":
            return [], None
    if extract == "boxed":
        if "\\boxed" not in text and "\\fbox" not in text:
            return [], None
        return _parse(text, _BOXED_ONLY), text
    if extract == "last_number":
        numbers = _NUMBER.findall(_THOUSANDS.sub("", text))
        if not numbers:
            return [], None
        return _parse(f"${numbers[-1]}$", _LATEX_FIRST), numbers[-1]
    return _parse(text, _LATEX_FIRST), text


def _warm_up(**params: Any) -> None:
    """Build math-verify's LaTeX parser once per worker (about a second), outside the item timeout."""
    verify(parse_gold("\\frac{1}{2}"), _parse("$0.5$", _LATEX_FIRST), timeout_seconds=None)


@register_reward("math", setup=_warm_up)
def math_reward(
    completion: str,
    sample: dict,
    *,
    extract: Extract = "auto",
    answer_key: str = "answer",
    tail_chars: int = 4000,
    max_answer_chars: int = 1000,
    float_rounding: int = 6,
) -> RewardResult:
    """1.0 when the extracted answer is equivalent to ``sample[answer_key]``, else 0.0."""
    answer = require_str(sample, answer_key)
    if len(answer) > max_answer_chars:
        raise RewardInputError(f"reference answer is {len(answer)} characters (limit {max_answer_chars})")
    gold = parse_gold(answer)
    predicted, _ = extract_answer(completion, extract=extract, tail_chars=tail_chars)
    info: dict[str, Any] = {"extracted": _shown(predicted)}
    if not predicted:
        return RewardResult(score=0.0, info=info)
    ok = verify(gold, predicted, float_rounding=float_rounding, timeout_seconds=None)
    return RewardResult(score=float(ok), info=info)


def _shown(parsed: list) -> str | None:
    """The extracted answer as text (math-verify's string form), for logs."""
    if not parsed:
        return None
    return str(parsed[-1])[:200]
