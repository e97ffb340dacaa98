"""Built-in prompt generators, named by ``data.source: builtin:<name>``.

``arithmetic`` makes small mixed +, -, x problems with a gold integer answer.
Its defaults come from measuring the untrained SmolLM2-135M-Instruct (see the
README): operands for + and - in [1, 20] (a >= b for -), for x in [2, 12].
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


@register_builtin_dataset("arithmetic")
def arithmetic(
    *,
    num_examples: int = 5000,
    seed: int = 1234,
    ops: tuple[str, ...] = ("+", "-", "x"),
    add_range: tuple[int, int] = (1, 20),
    mul_range: tuple[int, int] = (2, 12),
) -> list[Row]:
    """Rows ``{"id", "prompt": "What is a op b?", "answer": "<int>"}``, reproducible from ``seed``."""
    unknown = [op for op in ops if op not in _OPS]
    if unknown:
        raise ValueError(f"data.builtin.ops: unknown operator(s) {unknown}; choose from {list(_OPS)}")
    if num_examples < 1:
        raise ValueError(f"data.builtin.num_examples must be >= 1, got {num_examples}")
    rng = random.Random(seed)
    rows = []
    for i in range(num_examples):
        op = rng.choice(list(ops))
        lo, hi = mul_range if op == "x" else add_range
        a, b = rng.randint(lo, hi), rng.randint(lo, hi)
        if op == "-" and a < b:
            a, b = b, a
        rows.append({"id": i, "prompt": f"What is {a} {_SHOWN[op]} {b}?", "answer": str(_OPS[op](a, b))})
    return rows
