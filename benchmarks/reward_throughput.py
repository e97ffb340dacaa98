"""Math-reward throughput: rlkit's worker pool vs a plain loop of math_verify.verify calls.

    python benchmarks/reward_throughput.py --items 2000 --workers 2 --rounds 4

Both sides parse the same reference answers and completions and call
``math_verify.verify``; every item is distinct (math-verify caches parses). The
plain loop runs in this process with no timeout; the pool adds a per-item
timeout, process isolation and pickling. Loop and pool alternate in rounds so a
shared machine's load swings hit both alike; CPU-ms/item shows the pool's overhead
regardless of load. Pool start-up is measured separately (a trainer starts it once).
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


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of processes ``pids`` so far (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=4, help="alternate loop and pool chunks to share load swings")
    parser.add_argument("--timeout-s", type=float, default=5.0)
    args = parser.parse_args()
    logging.getLogger("math_verify").setLevel(logging.ERROR)

    from rlkit.rewards import RewardPool, score_batch

    start = time.perf_counter()
    pool = RewardPool(workers=args.workers)
    score_batch("math", *make_items(args.workers, seed=3), pool=pool)  # each worker runs the math setup hook
    startup_s = time.perf_counter() - start
    plain_loop(*make_items(4, seed=4))  # the same parser warm-up for the loop
    worker_pids = [w.proc.pid for w in pool._workers] + [os.getpid()]

    chunk = args.items // args.rounds
    loop_s = pool_s = loop_cpu = pool_cpu = 0.0
    loop_scores: list[float] = []
    results = []
    for r in range(args.rounds):
        items = make_items(chunk, seed=100 + 2 * r)  # every item distinct: nothing comes from a cache
        start, cpu = time.perf_counter(), time.process_time()
        loop_scores += plain_loop(*items)
        loop_s += time.perf_counter() - start
        loop_cpu += time.process_time() - cpu
        items = make_items(chunk, seed=101 + 2 * r)
        start, cpu = time.perf_counter(), _cpu_seconds(worker_pids)
        results += score_batch("math", *items, timeout_s=args.timeout_s, pool=pool)
        pool_s += time.perf_counter() - start
        pool_cpu += _cpu_seconds(worker_pids) - cpu
    pool.close()

    n = chunk * args.rounds
    errors = sum(r.error is not None for r in results)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"items: {n} per side in {args.rounds} alternating rounds; pool workers: {args.workers}; "
          f"per-item timeout: {args.timeout_s:g} s")
    print(f"machine: {os.cpu_count()} CPUs, load average {load} (other jobs share these cores)")
    print(f"plain loop of math_verify.verify: {n / loop_s:8.1f} items/s  ({loop_s:.2f} s, "
          f"{1000 * loop_cpu / n:.2f} CPU-ms/item, mean score {sum(loop_scores) / n:.3f})")
    print(f"rlkit pool (score_batch 'math'):   {n / pool_s:8.1f} items/s  ({pool_s:.2f} s, "
          f"{1000 * pool_cpu / n:.2f} CPU-ms/item incl. parent, mean score {sum(r.score for r in results) / n:.3f}, "
          f"{errors} errors)")
    print(f"pool start-up incl. parser warm-up: {startup_s:.2f} s (once per run)")
    print(f"ratio pool / loop: {loop_s / pool_s:.2f}x")


if __name__ == "__main__":
    main()
