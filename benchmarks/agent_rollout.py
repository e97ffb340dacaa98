"""Agentic rollouts on the embedded model: throughput, tool vs generation time, ARPO vs plain
sampling, and the turn loop's cost against one generate of the same length. One engine, one run.

1. The CPU demo (examples/agentic_arithmetic.yaml), untrained: rollouts/s, share of time in the
   python tool vs generation, tool calls per sample, tool-call rate and reward.
2. Same budget M per prompt: plain sampling (M independent rollouts) vs ARPO (N initial +
   branches + fills): tool calls per sample.
3. Turn-loop overhead: 3 turns of T tokens with a short observation between (ignore_eos) vs one
   generate of 3T tokens, alternated; target ratio <= 1.3.

Usage: python -u benchmarks/agent_rollout.py [--prompts 8 --n 4 --budget 8 --repeats 2]
"""

from __future__ import annotations

import argparse
import json
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
    args = parser.parse_args()

    from transformers import AutoTokenizer

    from rlkit.config import load_config
    from rlkit.data import PromptRenderer
    from rlkit.envs import Environment, StepResult, register_env
    from rlkit.envs.config import ArpoConfig, EnvConfig
    from rlkit.models import resolve_model_path
    from rlkit.rewards import get_reward
    from rlkit.rollout.engine import RolloutEngine
    from rlkit.rollout.multiturn import MultiTurnRunner
    from rlkit.rollout.types import SamplingConfig

    cfg = load_config(args.config)
    path = str(resolve_model_path(cfg.model.path))
    tokenizer = AutoTokenizer.from_pretrained(path)
    rows = [json.loads(line) for line in open(cfg.data.source)][: args.prompts]
    prompt_renderer = PromptRenderer(tokenizer, cfg.data)
    prompts = [prompt_renderer.token_ids(r) for r in rows]
    engine = RolloutEngine(model_path=path, seed=0, max_model_len=cfg.rollout.max_model_len, kv_cache_bytes=1 << 28)
    reward = get_reward(cfg.reward.name)
    base = SamplingConfig(temperature=cfg.rollout.temperature, max_new_tokens=cfg.rollout.max_new_tokens)

    def runner(env: EnvConfig, *, arpo=None, sampling=base) -> MultiTurnRunner:
        return MultiTurnRunner(generate=engine.generate, tokenizer=tokenizer, env=env, sampling=sampling,
                               max_model_len=cfg.rollout.max_model_len, arpo=arpo, seed=0)  # fmt: skip

    def calls(t) -> int:
        return sum(s.kind == "observation" for s in t.segments)

    print(f"1. untrained demo: {len(rows)} prompts x {args.n} samples ({args.config})")
    started = time.perf_counter()
    trajs, m = runner(cfg.env).run(rows, prompts, list(range(len(rows))), n=args.n)
    wall = time.perf_counter() - started
    scores = [reward(tokenizer.decode(t.token_ids, skip_special_tokens=True), rows[t.prompt_index], **cfg.reward.params) for t in trajs]
    mean = sum(float(getattr(s, "score", s)) for s in scores) / len(scores)
    print(f"  {len(trajs) / wall:.2f} rollouts/s ({wall:.1f} s); generation {m['time/turn_generate_s']:.1f} s, "
          f"environment/tools {m['time/env_s']:.1f} s ({m['time/env_s'] / wall:.0%} of the wall time)")
    print(f"  tool calls/sample {m['tool/calls_per_sample']:.2f}, samples with a call "
          f"{sum(calls(t) > 0 for t in trajs) / len(trajs):.2f}, tool errors {m['tool/errors']:.0f}, "
          f"turns/mean {m['turns/mean']:.2f}, reward {mean:.3f}")

    print(f"2. same budget M={args.budget} per prompt: plain vs ARPO (N={args.budget // 2}, beam 2, alpha 0.5, beta 0.2)")
    plain, mp = runner(cfg.env).run(rows, prompts, list(range(len(rows))), n=args.budget)
    arpo_cfg = ArpoConfig(budget=args.budget, initial=args.budget // 2)
    branched, ma = runner(cfg.env, arpo=arpo_cfg).run(rows, prompts, list(range(len(rows))), n=args.budget)
    print(f"  plain: {len(plain)} rollouts, tool calls/sample {mp['tool/calls_per_sample']:.3f}")
    print(f"  ARPO:  {len(branched)} rollouts, tool calls/sample {ma['tool/calls_per_sample']:.3f}, "
          f"branches/prompt {ma['arpo/branches']:.2f}, mean dH {ma['arpo/entropy_delta_mean']:+.4f}")
    print(f"  ratio ARPO / plain tool calls per sample = {ma['tool/calls_per_sample'] / max(mp['tool/calls_per_sample'], 1e-9):.3f}")

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
    print(f"3. turn loop (3 x {T} tokens, observation between) vs one generate of {3 * T} tokens, {len(rows)} x {args.n}")
    times = _common.alternate({
        "single generate": lambda: engine.generate(prompts, single),
        "3-turn loop": lambda: loop.run(rows, prompts, list(range(len(rows))), n=args.n),
    }, args.repeats)  # fmt: skip
    _common.report(times, baseline="single generate", subject="3-turn loop")


if __name__ == "__main__":
    main()
