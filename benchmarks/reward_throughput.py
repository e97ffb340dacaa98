"""Math-reward throughput: rlkit's worker pool vs a plain loop of math_verify.verify calls.

    python benchmarks/reward_throughput.py --items 2000 --workers 2

Both sides parse the same reference answers and completions and call
``math_verify.verify``; every item is distinct (math-verify caches parses). The
plain loop runs in this process with no timeout; the pool adds a per-item
timeout, process isolation and pickling. Pool start-up is measured separately
(a trainer starts its pool once).
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import time


def make_items(n: int, seed: int) -> tuple[list[str], list[dict]]:
    """Distinct completions in the styles models write, half of them correct."""
    rng = random.Random(seed)
    completions, samples = [], []
    for i in range(n):
        a, b = rng.randrange(1, 400), rng.randrange(2, 97)
        gold = f"\\frac{{{a}}}{{{b}}}"
        value = a / b if rng.random() < 0.5 else (a + 1) / b
        style = i % 4
        if style == 0:
            answer = f"\\boxed{{\\frac{{{round(value * b)}}}{{{b}}}}}"
        elif style == 1:
            answer = f"\\boxed{{{value:.6f}}}"
        elif style == 2:
            answer = f"The final answer is ${round(value * b)}/{b}$."
        else:
            answer = f"so the answer is \\boxed{{{round(value * b)} / {b}}} (item {i})"
        completions.append(f"We compute step {i}: {a} over {b}.\n{answer}")
        samples.append({"answer": gold})
    return completions, samples


def plain_loop(completions: list[str], samples: list[dict]) -> list[float]:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    config = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
    scores = []
    for completion, sample in zip(completions, samples):
        gold = parse(f"${sample['answer']}$", config, parsing_timeout=None)
        pred = parse(completion, config, parsing_timeout=None)
        scores.append(float(verify(gold, pred, timeout_seconds=None)))
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout-s", type=float, default=5.0)
    args = parser.parse_args()
    logging.getLogger("math_verify").setLevel(logging.ERROR)

    from rlkit.rewards import RewardPool, score_batch

    loop_items = make_items(args.items, seed=1)
    pool_items = make_items(args.items, seed=2)  # fresh inputs: nothing cached by the loop run

    start = time.perf_counter()
    loop_scores = plain_loop(*loop_items)
    loop_s = time.perf_counter() - start

    start = time.perf_counter()
    pool = RewardPool(workers=args.workers)
    warm = make_items(args.workers, seed=3)  # each worker's first item runs the math setup hook
    score_batch("math", *warm, pool=pool)
    startup_s = time.perf_counter() - start
    start = time.perf_counter()
    results = score_batch("math", *pool_items, timeout_s=args.timeout_s, pool=pool)
    pool_s = time.perf_counter() - start
    pool.close()

    errors = sum(r.error is not None for r in results)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"items: {args.items} per side; pool workers: {args.workers}; per-item timeout: {args.timeout_s:g} s")
    print(f"machine: {os.cpu_count()} CPUs, load average {load} (other jobs share these cores)")
    print(f"plain loop of math_verify.verify: {args.items / loop_s:8.1f} items/s  ({loop_s:.2f} s, "
          f"mean score {sum(loop_scores) / len(loop_scores):.3f})")
    print(f"rlkit pool (score_batch 'math'):   {args.items / pool_s:8.1f} items/s  ({pool_s:.2f} s, "
          f"mean score {sum(r.score for r in results) / len(results):.3f}, {errors} errors)")
    print(f"pool start-up incl. parser warm-up: {startup_s:.2f} s (once per run)")
    print(f"ratio pool / loop: {loop_s / pool_s:.2f}x")


if __name__ == "__main__":
    main()
