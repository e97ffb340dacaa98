"""Reading dataset rows inside rewards: a missing or mistyped field is a clear input error."""

from __future__ import annotations

from typing import Any


class RewardInputError(ValueError):
    """The sample (dataset row) lacks what the reward needs; scored as an error, not a crash."""


def require_field(sample: dict, key: str) -> Any:
    """``sample[key]``, or RewardInputError naming the key and the fields present."""
    if key not in sample:
        present = ", ".join(sorted(map(str, sample))) or "(none)"
        raise RewardInputError(f"sample has no {key!r} field; fields: {present}")
    value = sample[key]
    if value is None:
        raise RewardInputError(f"sample[{key!r}] is None")
    return value


def require_str(sample: dict, key: str) -> str:
    """``sample[key]`` as a non-empty string (numbers are converted), else RewardInputError."""
    value = require_field(sample, key)
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise RewardInputError(f"sample[{key!r}] must be a string, got {type(value).__name__}")
    text = str(value)
    if not text.strip():
        raise RewardInputError(f"sample[{key!r}] is empty")
    return text
