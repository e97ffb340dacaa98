"""Multi-turn rollouts on a real vLLM engine (tiny model): exact tokens across 3 turns, learner log-probs
equal to the engine's on sampled tokens, tools failing inside a batch, ARPO groups of exactly M."""

from __future__ import annotations

import os
import time

import pytest
import torch

from rlkit.batch import build_batch
from rlkit.envs import Environment, StepResult, call_tool, register_env, register_tool
from rlkit.envs.config import ArpoConfig, EnvConfig
from rlkit.envs.render import InlineRenderer
from rlkit.rollout.multiturn import MultiTurnRunner
from rlkit.rollout.types import SamplingConfig, sampling_seed, turn_seed

pytestmark = pytest.mark.slow


@register_env("test_fixed_turns")
class FixedTurns(Environment):
    """An observation after every turn until ``turns`` turns; any text is a valid action."""

    def __init__(self, *, turns: int = 3) -> None:
        self.turns, self.k = turns, 0

    def step(self, action: str) -> StepResult:
        self.k += 1
        if self.k >= self.turns:
            return StepResult(done=True, reward=1.0)
        return StepResult(observation=f"obs {self.k}: {len(action)} chars")


@register_env("test_tool_per_row")
class ToolPerRow(Environment):
    """Calls the tool the row names on every turn."""

    def reset(self, sample: dict):
        self.tool = sample["tool"]

    def step(self, action: str) -> StepResult:
        result = call_tool(self.tool, action)
        return StepResult(observation=result.text, info={"tool_results": [result]})


def _hang(query: str) -> str:
    time.sleep(60)
    return ""


def _boom(query: str) -> str:
    raise RuntimeError("tool exploded")


def _flood(query: str) -> str:
    return "y" * 1_000_000


def _bytes(query: str) -> bytes:
    return b"\xc3\x28"


def _len(query: str) -> str:
    return str(len(query))


for _name, _fn in {"e2e_hang": _hang, "e2e_boom": _boom, "e2e_flood": _flood, "e2e_bytes": _bytes, "e2e_len": _len}.items():
    register_tool(_name, timeout_s=1.0, max_output_chars=50)(_fn)


@pytest.fixture(scope="module")
def engine(tiny_llama):
    from rlkit.rollout.engine import CPU_ENGINE_ENV, RolloutEngine

    saved = {k: os.environ.get(k) for k in CPU_ENGINE_ENV}
    os.environ.update(CPU_ENGINE_ENV)
    eng = RolloutEngine(model_path=str(tiny_llama), seed=0, max_model_len=512, kv_cache_bytes=256 << 20, threads=2, multi_turn=True)
    yield eng
    del eng
    for k, v in saved.items():
        os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


@pytest.fixture(scope="module")
def tokenizer(tiny_llama):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_llama)


def _runner(engine, tokenizer, env: EnvConfig, *, max_new_tokens=6, arpo=None, calls=None, entropy_fn=None):
    def generate(prompts, sampling):
        out = engine.generate(prompts, sampling)
        if calls is not None:
            calls.append((prompts, out, sampling))
        return out

    return MultiTurnRunner(
        generate=generate, tokenizer=tokenizer, env=env, sampling=SamplingConfig(max_new_tokens=max_new_tokens),
        max_model_len=512, arpo=arpo, seed=0, entropy_fn=entropy_fn,
    )  # fmt: skip


PROMPTS = [[1, 9690, 198, 34, 35], [1, 9690, 198, 36], [1, 2683, 314, 253, 3543, 30], [1, 30, 31]]


def test_three_turns_are_token_exact_and_learner_logprobs_match(engine, tokenizer, tiny_llama):
    calls: list = []
    env = EnvConfig(name="test_fixed_turns", params={"turns": 3}, max_turns=3)
    runner = _runner(engine, tokenizer, env, calls=calls)
    rows = [{"id": i} for i in range(len(PROMPTS))]
    trajs, metrics = runner.run(rows, PROMPTS, list(range(len(PROMPTS))), n=2)
    assert len(trajs) == 8 and len(calls) == 3  # one engine call per turn for all open trajectories
    assert metrics["turns/mean"] == 3.0
    by_prefix: dict[tuple, list] = {}  # the engine's outputs by the exact ids it was sent (n=2: two per prompt)
    for prompts, outs, _ in calls:
        for c in outs:
            by_prefix.setdefault(tuple(prompts[c.prompt_index]), []).append((c.token_ids, c.logprobs))
    renderer = InlineRenderer(tokenizer)
    for t in trajs:
        kinds = [s.kind for s in t.segments]
        assert kinds == ["sampled", "observation", "sampled", "observation", "sampled"]
        prefix = list(t.prompt_ids)
        for seg in t.segments:  # every turn: the engine's ids for exactly this prefix, or the renderer's ids
            if seg.sampled:
                by_prefix[tuple(prefix)].remove((list(seg.ids), list(seg.logprobs)))  # ValueError if not sampled so
            else:
                assert list(seg.ids) == renderer.observation(seg.text)
            prefix += seg.ids
        assert t.full_ids == prefix
        assert t.loss_mask == [int(s.sampled) for s in t.segments for _ in s.ids]
        # the last turn ended by the per-turn cap (6 tokens, random model) or an end-of-sequence
        assert t.finish_reason == ("length" if len(t.segments[-1].ids) == 6 else "stop") and t.info["env_reward"] == 1.0
    assert not any(by_prefix.values())  # every engine output is in exactly one trajectory

    from rlkit.learner.policy import CausalLMPolicy, load_hf_model

    batch = build_batch(
        prompt_ids=[t.prompt_ids for t in trajs], response_ids=[t.token_ids for t in trajs],
        rollout_logprobs=[t.rollout_logprobs for t in trajs], group_ids=[t.group_id for t in trajs],
        rewards=[0.0] * len(trajs), advantages=torch.zeros(len(trajs)), loss_mask=[t.loss_mask for t in trajs],
        pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    policy = CausalLMPolicy(load_hf_model(str(tiny_llama), dtype=torch.float32, gradient_checkpointing=False))
    with torch.no_grad():
        logprobs, _ = policy(batch, temperature=1.0, chunk_size=1024, with_entropy=False)
    mask = batch.response_mask
    assert int(mask.sum()) == sum(t.num_sampled for t in trajs)
    diff = ((logprobs - batch.rollout_logprobs).abs() * mask).max().item()
    print(f"max |learner - vLLM| log-prob on {int(mask.sum())} sampled tokens over 3 turns: {diff:.2e}")
    assert diff < 1e-3


@pytest.mark.parametrize("arpo", [None, ArpoConfig(budget=4, initial=2, beam=2, alpha=0.5, beta=0.2, entropy_tokens=4, top_logprobs=5)])
def test_seeded_turns_regenerate_the_same_trajectories(engine, tokenizer, arpo):
    """Every turn's request carries turn_seed(prompt seed, sample, turn): the same rows give the same
    token ids in another order, another batch and with the prefixes already cached; the first turn is
    one request per prompt with n samples, seeded as single-turn generation."""
    env = EnvConfig(name="test_fixed_turns", params={"turns": 3}, max_turns=3)
    rows = [{"id": i} for i in range(len(PROMPTS))]
    seeds = tuple(sampling_seed(0, 7, k) for k in range(len(PROMPTS)))
    calls: list = []
    first, _ = _runner(engine, tokenizer, env, arpo=arpo, calls=calls).run(rows, PROMPTS, [0, 1, 2, 3], n=4, seeds=seeds)
    assert calls[0][0] == PROMPTS and len(calls[0][1]) == 4 * (2 if arpo else 4)  # one request per prompt, n samples

    order = [2, 0, 3]  # another order, another batch (one row fewer), the engine's prefix cache warm
    second, _ = _runner(engine, tokenizer, env, arpo=arpo).run(
        [rows[i] for i in order], [PROMPTS[i] for i in order], [10, 11, 12], n=4, seeds=tuple(seeds[i] for i in order)
    )  # fmt: skip

    def by_sample(trajs, rows_):
        return {(rows_[t.prompt_index]["id"], t.info["sample"]): (t.token_ids, t.fork_at) for t in trajs}

    a, b = by_sample(first, rows), by_sample(second, [rows[i] for i in order])
    assert len(a) == 16 and len(b) == 12
    assert {k: v for k, v in a.items() if k[0] in order} == b  # token for token, forks at the same segments
    assert len({tuple(v[0]) for v in a.values()}) == 16  # the samples differ from each other
    if arpo is None:  # the first turn is exactly single-turn generation with the same seeds
        single = engine.generate(PROMPTS, SamplingConfig(n=4, max_new_tokens=6, seeds=seeds, include_stop=True))
        firsts = {(t.prompt_index, t.info["sample"]): list(t.segments[0].ids) for t in first}
        counts = [0] * len(PROMPTS)
        for c in single:
            assert firsts[(c.prompt_index, counts[c.prompt_index])] == c.token_ids
            counts[c.prompt_index] += 1
        assert calls[0][2].seeds == seeds and calls[0][2].ns == (4, 4, 4, 4)
        for turn in (1, 2):  # every later request: its trajectory's (prompt seed, sample, turn)
            assert calls[turn][2].seeds == tuple(turn_seed(seeds[i], j, turn) for i in range(4) for j in range(4))


def test_failing_tools_do_not_stall_the_batch(engine, tokenizer):
    tools = ["e2e_hang", "e2e_boom", "e2e_flood", "e2e_bytes", "e2e_len"]
    env = EnvConfig(name="test_tool_per_row", max_turns=2)
    runner = _runner(engine, tokenizer, env)
    rows = [{"id": i, "tool": name} for i, name in enumerate(tools)]
    started = time.perf_counter()
    trajs, metrics = runner.run(rows, [PROMPTS[0]] * len(rows), list(range(len(rows))), n=1)
    wall = time.perf_counter() - started
    assert sorted(t.finish_reason for t in trajs) == ["max_turns"] * 5  # every trajectory of the batch finished
    obs = {rows[t.prompt_index]["tool"]: t.segments[1].text for t in trajs}
    assert obs["e2e_hang"] == "error: tool e2e_hang timed out after 1 s"
    assert obs["e2e_boom"] == "error: tool e2e_boom failed: RuntimeError: tool exploded"
    assert obs["e2e_flood"].endswith("[error: output truncated: 1000000 characters or bytes, cap 50]")
    assert obs["e2e_bytes"].startswith("error: tool e2e_bytes returned bytes that are not UTF-8")
    assert obs["e2e_len"].isdigit()
    assert metrics["tool/errors"] == 8.0 and metrics["tool/calls_per_sample"] == 2.0  # 4 failing tools x 2 turns
    assert metrics["time/env_s"] < 2 * (1.0 + 1.0)  # two tool turns, each within timeout + 1 s
    print(f"5 trajectories x 2 tool turns in {wall:.1f} s, env time {metrics['time/env_s']:.2f} s")


@pytest.mark.parametrize(("alpha", "branches", "fresh"), [(1.0, 4, 0), (0.0, 0, 4)])
def test_arpo_groups_hold_exactly_m(engine, tokenizer, alpha, branches, fresh):
    env = EnvConfig(name="test_fixed_turns", params={"turns": 4}, max_turns=4)
    arpo = ArpoConfig(budget=6, initial=2, beam=2, alpha=alpha, beta=0.0, entropy_tokens=4, top_logprobs=5)
    runner = _runner(engine, tokenizer, env, arpo=arpo, max_new_tokens=5)
    trajs, metrics = runner.run([{"id": 0}, {"id": 1}], PROMPTS[:2], [10, 11], n=6)
    for gid in (10, 11):
        group = [t for t in trajs if t.group_id == gid]
        assert len(group) == 6  # M, never more, never fewer
        forks = [t for t in group if t.parent_id is not None]
        assert len(forks) == branches and len(group) - len(forks) == 2 + fresh
        for f in forks:  # a branch shares its parent's prefix up to and including a tool result
            parent = next(t for t in trajs if t.traj_id == f.parent_id)
            assert [s.uid for s in f.segments[: f.fork_at]] == [s.uid for s in parent.segments[: f.fork_at]]
            assert f.segments[f.fork_at - 1].kind == "observation"
    assert metrics["arpo/branches"] == branches
    for t in trajs:  # the engine's top-k log-probs: k per step, descending, the sampled token's at most the top one
        for seg in (s for s in t.segments if s.sampled):
            assert len(seg.top_logprobs) == len(seg.ids)
            for top, lp in zip(seg.top_logprobs, seg.logprobs):
                assert len(top) == 5 and list(top) == sorted(top, reverse=True) and lp <= top[0] + 1e-6
