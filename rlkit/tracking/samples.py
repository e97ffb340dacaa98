"""Sample records for ``log.samples_every``: a few prompt groups with completions, rewards, advantages."""

from __future__ import annotations

from collections.abc import Sequence


def prompt_text(row: dict, prompt_field: str) -> str:
    """The row's prompt as text: the string itself, or the last user turn of a message list."""
    prompt = row.get(prompt_field, "")
    if isinstance(prompt, list):
        users = [m.get("content", "") for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        return users[-1] if users else str(prompt)
    return str(prompt)


def sample_records(
    *, rows: Sequence[dict], texts: Sequence[str], lengths: Sequence[int], truncated: Sequence[bool],
    group_ids: Sequence[int], task_scores: Sequence[float], rewards: Sequence[float], advantages: Sequence[float],
    prompt_field: str, groups: int,
) -> list[dict]:
    """One record per completion of the first ``groups`` prompt groups (in order of appearance)."""
    chosen: list[int] = []
    for g in group_ids:
        if g not in chosen:
            chosen.append(g)
    chosen = chosen[:groups]
    return [
        {
            "group": chosen.index(g), "prompt": prompt_text(rows[i], prompt_field), "completion": texts[i],
            "task_score": float(task_scores[i]), "reward": float(rewards[i]), "advantage": float(advantages[i]),
            "length": int(lengths[i]), "truncated": bool(truncated[i]),
        }
        for i, g in enumerate(group_ids)
        if g in chosen
    ]
