"""`format`: required tag structure (e.g. ``<think>..</think><answer>..</answer>``) and length shaping.

The structure holds when each tag in ``tags`` opens and closes exactly once, in
order, without nesting; with ``strict``, nothing but whitespace may lie outside
the tags. Length shaping multiplies the structure score by a factor that is 1
up to ``soft_max_chars``, falls linearly to 0 at ``max_chars``, and is 0 beyond.
"""

from __future__ import annotations

import re
from typing import Any

from rlkit.rewards.registry import RewardResult, register_reward

_TAG_NAME = re.compile(r"[A-Za-z][\w-]*")


def check_structure(completion: str, *, tags: tuple[str, ...], strict: bool) -> str | None:
    """None when ``completion`` has the required structure, else what is wrong."""
    position, previous = 0, "the start"
    outside: list[str] = []
    for tag in tags:
        opening, closing = f"<{tag}>", f"</{tag}>"
        for marker in (opening, closing):
            count = completion.count(marker)
            if count != 1:
                return f"{marker} appears {count} times (expected once)"
        start = completion.find(opening)
        end = completion.find(closing)
        if start < position:
            return f"{opening} must come after {previous}"
        if end < start:
            return f"{closing} comes before {opening}"
        outside.append(completion[position:start])
        position, previous = end + len(closing), closing
    outside.append(completion[position:])
    if strict and any(part.strip() for part in outside):
        return "text outside the required tags"
    return None


def length_factor(length: int, *, soft_max_chars: int | None, max_chars: int | None) -> float:
    """1 up to ``soft_max_chars``, linear to 0 at ``max_chars``, 0 beyond (None: no limit)."""
    if max_chars is not None and length > max_chars:
        return 0.0
    if soft_max_chars is None or max_chars is None or length <= soft_max_chars:
        return 1.0
    return (max_chars - length) / (max_chars - soft_max_chars)


@register_reward("format")
def format_reward(
    completion: str,
    sample: dict,
    *,
    tags: tuple[str, ...] = ("think", "answer"),
    strict: bool = False,
    soft_max_chars: int | None = None,
    max_chars: int | None = None,
) -> RewardResult:
    """1.0 for the required structure (times the length factor), else 0.0."""
    bad = [t for t in tags if not _TAG_NAME.fullmatch(t)]
    if bad or not tags:
        raise ValueError(f"tags must be non-empty tag names, got {list(tags)!r}")
    if soft_max_chars is not None and (max_chars is None or soft_max_chars > max_chars):
        raise ValueError(f"soft_max_chars={soft_max_chars} needs max_chars >= it, got {max_chars}")
    problem = check_structure(completion, tags=tuple(tags), strict=strict)
    factor = length_factor(len(completion), soft_max_chars=soft_max_chars, max_chars=max_chars)
    info: dict[str, Any] = {"structure_ok": problem is None, "length_factor": factor}
    if problem is not None:
        info["problem"] = problem
    return RewardResult(score=float(problem is None) * factor, info=info)
