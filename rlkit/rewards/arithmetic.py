"""`arithmetic`: exact integer answers, as in the embedded-model demo task.

``answer_tag`` takes the last ``Answer: N`` in the completion (the one-shot
format of the demo); ``last_int`` takes the last integer anywhere (lenient).
"""

from __future__ import annotations

import re
from typing import Literal

from rlkit.rewards.registry import RewardResult, register_reward
from rlkit.rewards.samples import RewardInputError, require_field

_ANSWER_TAG = re.compile(r"Answer:\s*(-?\d+)")
_INTEGER = re.compile(r"-?\d+")


def extract_int(text: str, *, extract: Literal["answer_tag", "last_int"] = "answer_tag") -> int | None:
    """The integer answer in ``text`` by the chosen rule, or None when there is none."""
    pattern = _ANSWER_TAG if extract == "answer_tag" else _INTEGER
    last = None
    for last in pattern.finditer(text):
        pass
    if last is None:
        return None
    return int(last.group(1) if extract == "answer_tag" else last.group(0))


@register_reward("arithmetic")
def arithmetic_reward(
    completion: str,
    sample: dict,
    *,
    extract: Literal["answer_tag", "last_int"] = "answer_tag",
    answer_key: str = "answer",
) -> RewardResult:
    """1.0 when the extracted integer equals ``int(sample[answer_key])``, else 0.0."""
    raw = require_field(sample, answer_key)
    try:
        truth = int(str(raw).strip())
    except ValueError:
        raise RewardInputError(f"sample[{answer_key!r}]={raw!r} is not an integer") from None
    got = extract_int(completion, extract=extract)
    return RewardResult(score=float(got == truth), info={"extracted": got})
