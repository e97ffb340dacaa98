"""Seeded generators of hostile reward inputs: empty, huge, malformed LaTeX, binary junk, broken samples."""

from __future__ import annotations

import random
import string
from typing import Any

_LATEX_TOKENS = [
    "\\frac{", "}", "{", "\\boxed{", "\\sqrt[", "]", "^", "_", "\\left(", "\\right)", "$", "$$", "\\\\", "&",
    "\\begin{matrix}", "\\end{matrix}", "\\int", "\\sum_{", "\\infty", "\\text{", "\\%", "\\pi", "\\cdot",
    "=", "+", "-", "/", "(", ")", "[", "]", "\\{", "\\}", ",", ".", "1", "2", "9", "x", "<answer>", "</answer>",
    "\\dfrac", "\\mathbb{R}", "\\le", "\\ne", "!", "'", "\\", "Answer:", "```lean\n", "```", "```python\n",
    "theorem ", "sorry", "#eval ", "\n",
]  # fmt: skip


def junk_completion(rng: random.Random) -> Any:
    kind = rng.randrange(10)
    if kind == 0:
        return ""
    if kind == 1:  # huge
        unit = rng.choice(["1 ", "a", "\\frac{", "{", "x^", "$1$ ", "\\boxed{9}"])
        return unit * (rng.randrange(200_000, 1_000_000) // len(unit))
    if kind in (2, 3, 4):  # malformed LaTeX (and stray markup)
        return "".join(rng.choice(_LATEX_TOKENS) for _ in range(rng.randrange(1, 80)))
    if kind == 5:  # binary junk, decoded as Latin-1 or with lone surrogates
        raw = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 5000)))
        return raw.decode("latin-1") if rng.random() < 0.5 else raw.decode("utf-8", "surrogateescape")
    if kind == 6:
        return "".join(rng.choice(string.printable) for _ in range(rng.randrange(1, 3000)))
    if kind == 7:  # not a string at all
        return rng.choice([None, 42, b"bytes", ["list"], {"a": 1}, 3.5])
    if kind == 8:
        return "\\boxed{" * rng.randrange(1, 3000) + "1"
    return "Answer: " + str(rng.randrange(-10**30, 10**30)) + " \\boxed{" + str(rng.random()) + "}"


def junk_sample(rng: random.Random) -> Any:
    kind = rng.randrange(9)
    if kind == 0:
        return {}
    if kind == 1:
        return {"question": "what?"}
    if kind == 2:
        return {key: None for key in ("answer", "statement", "tests")}
    if kind == 3:
        return {"answer": junk_completion(rng), "statement": junk_completion(rng), "tests": junk_completion(rng)}
    if kind == 4:
        return {"answer": [1, 2], "statement": {"x": 1}, "tests": [1, None, {"input": 3}]}
    if kind == 5:
        return rng.choice([None, "not a dict", 7, ["answer", "1"]])
    if kind == 6:
        return {"answer": "\\frac{" * 50, "statement": "theorem", "tests": ["assert (", "\x00"]}
    if kind == 7:
        return {"answer": "1/2", "statement": "theorem t : 1 = 1 := by", "tests": ["assert True"]}
    return {"answer": str(rng.randrange(100)), "statement": "example : True := by", "tests": []}


def bad_batch(seed: int, n: int) -> tuple[list[Any], list[Any]]:
    rng = random.Random(seed)
    return [junk_completion(rng) for _ in range(n)], [junk_sample(rng) for _ in range(n)]
