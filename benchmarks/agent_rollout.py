"""Agentic rollouts on the embedded model: throughput, tool vs generation time, ARPO vs plain
sampling, and the turn loop's cost against one generate of the same length. One engine, one run.

1. The CPU demo (examples/agentic_arithmetic.yaml), untrained: rollouts/s, share of time in the
   python tool vs generation, tool calls per sample, tool-call rate and reward.
2. Same budget M per prompt: plain sampling (M independent rollouts) vs ARPO (N = M/2 initial +
   branches + fills): tool calls per sample and rollouts/s for both, branches per prompt, each
   with its standard error over prompts. Seeded per prompt (turn_seed), so a rerun repeats it.
3. Turn-loop overhead: 3 turns of T tokens with a short observation between (ignore_eos) vs one
   generate of 3T tokens (target <= 1.3), and vs one of 3T + the observations' tokens (the
   positions the loop handles), alternated; wall and process CPU seconds (the engine runs in this
   process; heavy load inflates both, OpenMP threads spin).

Usage: python -u benchmarks/agent_rollout.py [--prompts 8 --n 4 --budget 8 --repeats 2 --parts 1,2,3]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import _common


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="examples/agentic_arithmetic.yaml")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--budget", type=int, default=8)
    parser.add_argument("--turn-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--parts", default="1,2,3", help="which parts to run, e.g. 3 or 2,3")
    args = parser.parse_args()

    from transformers import AutoTokenizer

    from rlkit.config import load_config
    from rlkit.data import PromptRenderer
    from rlkit.data.prompts import load_prompt_rows
    from rlkit.models import resolve_model_path
    from rlkit.rewards import get_reward
    from rlkit.rollout.engine import RolloutEngine
    from rlkit.rollout.multiturn import MultiTurnRunner
    from rlkit.rollout.types import SamplingConfig, sampling_seed

    cfg = load_config(args.config)
    path = str(resolve_model_path(cfg.model.path))
    tokenizer = AutoTokenizer.from_pretrained(path)
    prompt_renderer = PromptRenderer(tokenizer, cfg.data)
    rows = load_prompt_rows(cfg.data, prompt_renderer)[: args.prompts]
    prompts = [prompt_renderer.token_ids(r) for r in rows]
    started = time.perf_counter()
    engine = RolloutEngine(model_path=path, seed=0, max_model_len=cfg.rollout.max_model_len, kv_cache_bytes=1 << 28, multi_turn=True)
    print(f"engine ready in {time.perf_counter() - started:.1f} s; {len(rows)} prompts of {sum(map(len, prompts)) / len(prompts):.0f} tokens")
    reward = get_reward(cfg.reward.name)
    base = SamplingConfig(temperature=cfg.rollout.temperature, max_new_tokens=cfg.rollout.max_new_tokens)
    seeds = tuple(sampling_seed(cfg.seed, 0, i) for i in range(len(rows)))

    def runner(env, *, arpo=None, sampling=base) -> MultiTurnRunner:
        return MultiTurnRunner(generate=engine.generate, tokenizer=tokenizer, env=env, sampling=sampling,
                               max_model_len=cfg.rollout.max_model_len, arpo=arpo, seed=0)  # fmt: skip

    def run(env, *, n, arpo=None):
        return runner(env, arpo=arpo).run(rows, prompts, list(range(len(rows))), n=n, seeds=seeds)

    parts = {int(p) for p in args.parts.split(",")}
    if 1 in parts:
        part1(args, rows, run, tokenizer, reward, cfg)
    if 2 in parts:
        part2(args, rows, run, cfg)
    if 3 in parts:
        part3(args, rows, prompts, runner, engine)


def _tool_calls(traj) -> int:
    return sum(s.kind == "observation" for s in traj.segments)


def _mean_se(values: list[float]) -> tuple[float, float]:
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0)


def part1(args, rows, run, tokenizer, reward, cfg) -> None:
    print(f"1. untrained demo: {len(rows)} prompts x {args.n} samples ({args.config})")
    started = time.perf_counter()
    trajs, m = run(cfg.env, n=args.n)
    wall = time.perf_counter() - started
    scores = [reward(tokenizer.decode(t.token_ids, skip_special_tokens=True), rows[t.prompt_index], **cfg.reward.params) for t in trajs]
    mean = sum(float(getattr(s, "score", s)) for s in scores) / len(scores)
    print(f"  {len(trajs) / wall:.2f} rollouts/s ({wall:.1f} s); generation {m['time/turn_generate_s']:.1f} s, "
          f"environment/tools {m['time/env_s']:.1f} s ({m['time/env_s'] / wall:.0%} of the wall time)")  # fmt: skip
    print(f"  tool calls/sample {m['tool/calls_per_sample']:.2f}, samples with a call "
          f"{sum(_tool_calls(t) > 0 for t in trajs) / len(trajs):.2f}, tool errors {m['tool/errors']:.0f}, "
          f"turns/mean {m['turns/mean']:.2f}, reward {mean:.3f}")  # fmt: skip


def part2(args, rows, run, cfg) -> None:
    from rlkit.envs.config import ArpoConfig

    M = args.budget
    print(f"2. same budget M={M} per prompt, {len(rows)} prompts: plain vs ARPO (N={M // 2}, beam 2, alpha 0.5, beta 0.2)")
    results = {}
    for label, arpo in (("plain", None), ("ARPO", ArpoConfig(budget=M, initial=M // 2))):
        started = time.perf_counter()
        trajs, m = run(cfg.env, n=M, arpo=arpo)
        wall = time.perf_counter() - started
        per_prompt = [[t for t in trajs if t.prompt_index == i] for i in range(len(rows))]
        calls = _mean_se([sum(map(_tool_calls, g)) / len(g) for g in per_prompt])
        forks = _mean_se([float(sum(t.parent_id is not None for t in g)) for g in per_prompt])
        results[label] = calls[0]
        print(f"  {label:<5}: {len(trajs)} rollouts in {wall:.1f} s = {len(trajs) / wall:.2f} rollouts/s; tool calls/sample "
              f"{calls[0]:.3f} ± {calls[1]:.3f} (SE over prompts); branches/prompt {forks[0]:.2f} ± {forks[1]:.2f}; "
              f"turns/mean {m['turns/mean']:.2f}" + (f"; mean dH {m['arpo/entropy_delta_mean']:+.4f}" if arpo else ""))  # fmt: skip
    print(f"  ratio ARPO / plain tool calls per sample = {results['ARPO'] / max(results['plain'], 1e-9):.3f}")


def part3(args, rows, prompts, runner, engine) -> None:
    from rlkit.envs import Environment, StepResult, register_env
    from rlkit.envs.config import EnvConfig
    from rlkit.rollout.types import SamplingConfig

    @register_env("bench_fixed_turns")
    class FixedTurns(Environment):
        def __init__(self, *, turns: int = 3) -> None:
            self.turns, self.k = turns, 0

        def step(self, action: str) -> StepResult:
            self.k += 1
            return StepResult(done=True) if self.k >= self.turns else StepResult(observation="ok")

    T = args.turn_tokens
    loop = runner(EnvConfig(name="bench_fixed_turns", max_turns=3), sampling=SamplingConfig(max_new_tokens=T, ignore_eos=True))
    single = SamplingConfig(n=args.n, max_new_tokens=3 * T, ignore_eos=True)
    positions = 3 * T + 2 * len(loop.renderer.observation("ok"))  # sampled + the two observations' tokens
    single_all = SamplingConfig(n=args.n, max_new_tokens=positions, ignore_eos=True)
    print(f"3. turn loop (3 x {T} tokens, observation between) vs one generate of {3 * T} tokens (and of "
          f"{positions}: the loop's sampled + observation positions), {len(rows)} x {args.n}")  # fmt: skip
    engine.generate(prompts, SamplingConfig(n=args.n, max_new_tokens=2))  # warm-up
    fns = {
        "single generate": lambda: engine.generate(prompts, single),
        f"single generate {positions}": lambda: engine.generate(prompts, single_all),
        "3-turn loop": lambda: loop.run(rows, prompts, list(range(len(rows))), n=args.n),
    }
    wall: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(args.repeats):  # interleaved, so drift in the machine's load hits both alike
        for label, fn in fns.items():
            c, w = time.process_time(), time.perf_counter()
            fn()
            wall[label].append(time.perf_counter() - w)
            cpu[label].append(time.process_time() - c)
    for unit, times in (("wall", wall), ("process CPU", cpu)):
        print(f"  {unit} seconds:")
        _common.report(times, baseline="single generate", subject="3-turn loop")
        loop_s = statistics.median(times["3-turn loop"])
        print(f"  ratio 3-turn loop / single generate {positions} = {loop_s / statistics.median(times[f'single generate {positions}']):.3f}")


if __name__ == "__main__":
    main()
