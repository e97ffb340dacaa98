"""Writes arithmetic_words.jsonl: the built-in arithmetic problems as one-sentence word problems.

Same operands as ``builtin:arithmetic`` (+, - in [1, 20] with a >= b; x in [2, 12]); each row is
``{"id", "prompt", "answer"}``. ``python examples/data/make_arithmetic_words.py`` rewrites it
identically (seeded).
"""

import json
import random
from pathlib import Path

from rlkit.data.builtin import arithmetic_problems

NAMES = ["Ana", "Ben", "Chen", "Dara", "Eli", "Fay", "Gus", "Hana"]
ITEMS = ["apples", "books", "coins", "stamps", "marbles", "pencils", "shells", "cards"]
TEMPLATES = {
    "+": ("{n} has {a} {i} and gets {b} more. How many {i} does {n} have now?", lambda a, b: a + b),
    "-": ("{n} has {a} {i} and gives away {b}. How many {i} are left?", lambda a, b: a - b),
    "x": ("{n} buys {a} boxes with {b} {i} in each. How many {i} is that in total?", lambda a, b: a * b),
}


def main() -> None:
    rng = random.Random(1234)
    problems = arithmetic_problems(ops=("+", "-", "x"), add_range=(1, 20), mul_range=(2, 12))
    rng.shuffle(problems)
    rows = []
    for k, (a, op, b) in enumerate(problems):
        text, fn = TEMPLATES[op]
        rows.append({"id": k, "prompt": text.format(n=rng.choice(NAMES), i=rng.choice(ITEMS), a=a, b=b), "answer": str(fn(a, b))})
    out = Path(__file__).with_name("arithmetic_words.jsonl")
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"wrote {len(rows)} rows to {out}")


if __name__ == "__main__":
    main()
