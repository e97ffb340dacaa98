"""Built-in prompt generators, named by ``data.source: builtin:<name>``.

``arithmetic`` makes small mixed +, -, x problems with a gold integer answer.
Its defaults come from measuring the untrained SmolLM2-135M-Instruct (see the
README): operands for + and - in [1, 20] (a >= b for -), for x in [2, 12].

A generator that takes a ``split`` keyword serves ``data.split``; its splits must
be disjoint (no problem shared between train and test), so that evaluating on
``test`` measures problems the run never trained on.
"""

from __future__ import annotations

import random
from collections.abc import Callable

Row = dict
BUILTIN_DATASETS: dict[str, Callable[..., list[Row]]] = {}


def register_builtin_dataset(name: str):
    def decorator(fn: Callable[..., list[Row]]):
        if name in BUILTIN_DATASETS:
            raise ValueError(f"builtin dataset {name!r} is already registered")
        BUILTIN_DATASETS[name] = fn
        return fn

    return decorator


_OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "x": lambda a, b: a * b}
_SHOWN = {"+": "+", "-": "-", "x": "×"}
ARITHMETIC_SPLITS = ("train", "test")


def arithmetic_problems(*, ops: tuple[str, ...], add_range: tuple[int, int], mul_range: tuple[int, int]) -> list[tuple[int, str, int]]:
    """Every distinct ``(a, op, b)`` the ranges allow, in a fixed order (``a >= b`` for ``-``)."""
    problems = []
    for op in ops:
        lo, hi = mul_range if op == "x" else add_range
        problems += [(a, op, b) for a in range(lo, hi + 1) for b in range(lo, hi + 1) if op != "-" or a >= b]
    return problems


@register_builtin_dataset("arithmetic")
def arithmetic(
    *,
    split: str = "train",
    num_examples: int | None = None,
    test_size: int = 100,
    seed: int = 1234,
    ops: tuple[str, ...] = ("+", "-", "x"),
    add_range: tuple[int, int] = (1, 20),
    mul_range: tuple[int, int] = (2, 12),
) -> list[Row]:
    """Rows ``{"id", "prompt": "What is a op b?", "answer": "<int>"}`` of one split, reproducible from ``seed``.

    Every distinct problem the ranges allow (731 with the defaults) is shuffled with
    ``seed``; the first ``test_size`` form ``test``, the rest ``train``. Each problem
    appears once in one split only. ``num_examples`` takes the first N rows of the
    split (default: all of them).
    """
    unknown = [op for op in ops if op not in _OPS]
    if unknown:
        raise ValueError(f"data.builtin.ops: unknown operator(s) {unknown}; choose from {list(_OPS)}")
    if split not in ARITHMETIC_SPLITS:
        raise ValueError(f"data.split: builtin:arithmetic has splits {list(ARITHMETIC_SPLITS)}, got {split!r}")
    problems = arithmetic_problems(ops=tuple(dict.fromkeys(ops)), add_range=tuple(add_range), mul_range=tuple(mul_range))
    if not 0 < test_size < len(problems):
        raise ValueError(
            f"data.builtin.test_size must be in [1, {len(problems) - 1}] (the ranges allow {len(problems)} "
            f"distinct problems), got {test_size}"
        )
    random.Random(seed).shuffle(problems)
    chosen = problems[:test_size] if split == "test" else problems[test_size:]
    if num_examples is not None:
        if not 1 <= num_examples <= len(chosen):
            raise ValueError(
                f"data.builtin.num_examples={num_examples}: split {split!r} has {len(chosen)} distinct problems "
                f"({len(problems)} in all, test_size={test_size}); use 1..{len(chosen)} or leave it unset for all"
            )
        chosen = chosen[:num_examples]
    return [
        {"id": i, "prompt": f"What is {a} {_SHOWN[op]} {b}?", "answer": str(_OPS[op](a, b))}
        for i, (a, op, b) in enumerate(chosen)
    ]
