"""`arpo`: ARPO's reward (arXiv 2507.19849; algorithms.md section 11).

- invalid format -> -1: ``<think>``/``<answer>`` tags unpaired or out of order, a tool or
  ``<result>`` tag opened inside another or closed without being opened, or no ``\\boxed{}``
  inside ``<answer>...</answer>``;
- valid format: the boxed answer's score against ``sample[answer_key]`` (a string or a list of
  acceptable strings, best one counts): ``f1`` (SQuAD-normalised word-level F1, what the public
  scorer uses for math and QA alike) or ``em`` (normalised exact match);
- plus ``bonus`` (0.1) when the score is > 0 and at least ``min_tools`` distinct tools were called
  (the paper: both search and python).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from typing import Literal

from rlkit.rewards.registry import RewardResult, register_reward
from rlkit.rewards.samples import RewardInputError, require_field

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_TAG = re.compile(r"<(/?)([a-z_]+)>")


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no articles, single spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    return " ".join(_ARTICLES.sub(" ", text).split())


def word_f1(prediction: str, gold: str) -> float:
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (balanced braces), or None."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 1, start + len("\\boxed{")
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i:j]
    return None


def format_problem(completion: str, *, tools: tuple[str, ...]) -> str | None:
    """Why the completion's format is invalid, or None."""
    watched = {"think", "answer", "result", *tools}
    open_tag: str | None = None
    seen: list[str] = []
    for m in _TAG.finditer(completion):
        closing, name = bool(m.group(1)), m.group(2)
        if name not in watched:
            continue
        if not closing:
            if open_tag is not None:
                return f"<{name}> opened inside <{open_tag}>"
            open_tag = name
            seen.append(name)
        elif open_tag != name:
            return f"</{name}> without an open <{name}>"
        else:
            open_tag = None
    if open_tag is not None:
        return f"<{open_tag}> is never closed"
    if seen.count("answer") != 1:
        return f"{seen.count('answer')} <answer> blocks (expected 1)"
    if seen.count("think") > 1:
        return f"{seen.count('think')} <think> blocks (expected at most 1)"
    answer = completion[completion.index("<answer>") : completion.index("</answer>")]
    if last_boxed(answer) is None:
        return "no \\boxed{} in <answer>"
    return None


@register_reward("arpo")
def arpo_reward(
    completion: str,
    sample: dict,
    *,
    metric: Literal["f1", "em"] = "f1",
    tools: tuple[str, ...] = ("python", "search"),
    bonus: float = 0.1,
    min_tools: int = 2,
    answer_key: str = "answer",
) -> RewardResult:
    raw = require_field(sample, answer_key)
    golds = [raw] if isinstance(raw, (str, int, float)) else raw
    if not isinstance(golds, list) or not golds:
        raise RewardInputError(f"sample[{answer_key!r}] must be a string or a non-empty list of strings, got {raw!r}")
    problem = format_problem(completion, tools=tuple(tools))
    if problem is not None:
        return RewardResult(score=-1.0, info={"format": problem})
    answer = completion[completion.index("<answer>") : completion.index("</answer>")]
    predicted = last_boxed(answer)
    if metric == "f1":
        score = max(word_f1(predicted, str(g)) for g in golds)
    else:
        score = float(any(normalize_answer(predicted) == normalize_answer(str(g)) for g in golds))
    used = sorted({t for t in tools if f"<{t}>" in completion and f"</{t}>" in completion})
    if score > 0 and len(used) >= min_tools:
        score += bonus
    return RewardResult(score=score, info={"extracted": predicted, "tools": used})
