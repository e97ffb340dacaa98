"""Multi-turn rollouts: turns for a batch of trajectories together, tools in parallel, ARPO branching.

Each turn sends every open trajectory's full token ids (prompt + segments so far; prefix caching
makes the resend cheap) to the engines in ONE generate call, spread over them as single-turn
rollouts are. The sampled ids and log-probs are appended untouched; the environments step in a
thread pool (so a slow tool costs the turn at most its timeout); each observation is rendered to
ids and appended masked. Budgets: ``rollout.max_new_tokens`` per turn, ``env.max_total_tokens``
per trajectory, ``env.max_turns`` sampled turns, ``rollout.max_model_len`` for prompt + response.
With ``rollout.arpo`` a group grows to M trajectories by :class:`rlkit.algorithms.arpo.ArpoTree`.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from rlkit.algorithms.arpo import ArpoTree, normalized_entropy
from rlkit.envs.base import Environment, StepResult
from rlkit.envs.config import ArpoConfig, EnvConfig
from rlkit.envs.render import make_renderer
from rlkit.envs.trajectory import Trajectory
from rlkit.rollout.types import Completion, SamplingConfig, turn_seed

GenerateFn = Callable[[list[list[int]], SamplingConfig], list[Completion]]
EntropyFn = Callable[[Trajectory, list[list[float]]], float]


class MultiTurnRunner:
    def __init__(
        self, *, generate: GenerateFn, tokenizer, env: EnvConfig, sampling: SamplingConfig, max_model_len: int,
        arpo: ArpoConfig | None = None, seed: int = 0, entropy_fn: EntropyFn | None = None,
        prompt_ids_for: Callable[[dict, object], list[int]] | None = None,
    ) -> None:  # fmt: skip
        self.generate, self.tokenizer, self.cfg, self.arpo = generate, tokenizer, env, arpo
        self.env_class = env.env_class()
        self.renderer = make_renderer(env.renderer, tokenizer, **({"role": env.observation_role} if env.renderer == "chat" else {}))
        stop = tuple(sampling.stop) + tuple(self.env_class(**env.params).stop)
        self.sampling = dataclasses.replace(
            sampling, n=1, stop=stop, include_stop=True, top_logprobs=arpo.top_logprobs if arpo else sampling.top_logprobs
        )
        self.max_model_len = max_model_len
        self.rng = random.Random(seed)
        vocab = len(tokenizer)
        self.entropy_fn = entropy_fn or (
            lambda traj, top: normalized_entropy(top, tokens=arpo.entropy_tokens if arpo else 20, vocab_size=vocab)
        )
        self.prompt_ids_for = prompt_ids_for
        self.pool = ThreadPoolExecutor(max_workers=env.tool_workers, thread_name_prefix="rlkit-env")

    # ------------------------------------------------------------------ one batch

    def run(
        self, rows: list[dict], prompt_ids: list[list[int]], group_ids: list[int], *, n: int,
        seeds: tuple[int, ...] | None = None,
    ) -> tuple[list[Trajectory], dict[str, float]]:  # fmt: skip
        """Trajectories for every row (``n`` each, or ARPO's M), finished; and rollout metrics.

        ``seeds`` (one per row: :func:`rlkit.rollout.types.sampling_seed`) seeds every turn's request
        by (row seed, sample index, turn) (:func:`rlkit.rollout.types.turn_seed`) and ARPO's branch
        draws by the row seed, so the same rows and seeds give the same trajectories."""
        stats = _Stats()
        trees: dict[int, ArpoTree] = {}
        self._seeds = {group_ids[i]: seeds[i] for i in range(len(rows))} if seeds is not None else None
        self._samples = {gid: 0 for gid in group_ids}  # the next sample index of each group
        done: list[Trajectory] = []
        open_: list[tuple[Trajectory, Environment]] = []
        for i, row in enumerate(rows):
            count = n
            if self.arpo:
                a = self.arpo
                rng = random.Random(seeds[i] if seeds is not None else self.rng.random())
                trees[group_ids[i]] = ArpoTree(a.budget, a.initial, a.beam, a.alpha, a.beta, rng)
                count = trees[group_ids[i]].start()
            open_ += [self._new(row, prompt_ids[i], group_ids[i], i) for _ in range(count)]
        by_group = {group_ids[i]: (rows[i], prompt_ids[i], i) for i in range(len(rows))}

        while open_:
            started = time.perf_counter()
            open_, finished = self._budget_check(open_)
            done += finished
            if not open_:
                break
            completions = self._generate(open_)
            stats.generate_s += time.perf_counter() - started
            stepping: list[tuple[Trajectory, Environment, Completion]] = []
            forks: list[tuple[Trajectory, Environment]] = []
            for (traj, env), c in zip(open_, completions):
                after_tool = traj.info.pop("after_tool", False)
                seg = traj.append_sampled(c.token_ids, c.logprobs, text=c.text, top_logprobs=c.info.get("top_logprobs"))
                if self.arpo:
                    forks += self._maybe_branch(traj, env, seg, after_tool, trees[traj.group_id], stats)
                stepping.append((traj, env, c))
            started = time.perf_counter()
            results = list(self.pool.map(lambda x: _safe_step(x[1], x[2].text), stepping))
            stats.env_s += time.perf_counter() - started
            open_ = []
            for (traj, env, c), result in zip(stepping, results):
                stats.count(result)
                if result.reward is not None:
                    traj.info["env_reward"] = result.reward
                if not self._continue(traj, c, result):
                    env.close()
                    done.append(traj)
                    continue
                open_.append((traj, env))
            open_ += forks
            for gid, tree in trees.items():  # ARPO: refill a finished group to M with fresh rollouts
                if not any(t.group_id == gid for t, _ in open_) and tree.used < tree.budget:
                    row, ids, index = by_group[gid]
                    open_ += [self._new(row, ids, gid, index) for _ in range(tree.fill())]
        return done, stats.metrics(done, trees)

    # ------------------------------------------------------------------ helpers

    def _new(self, row: dict, prompt_ids: list[int], group_id: int, index: int) -> tuple[Trajectory, Environment]:
        env = self.env_class(**self.cfg.params)
        prompt = env.reset(row)
        if prompt is not None:
            if self.prompt_ids_for is None:
                raise ValueError(f"environment {self.cfg.name!r} returned its own prompt but no prompt renderer was given")
            prompt_ids = self.prompt_ids_for(row, prompt)
        traj = Trajectory(prompt_ids=list(prompt_ids), group_id=group_id, prompt_index=index)
        return self._number(traj), env

    def _number(self, traj: Trajectory) -> Trajectory:
        """Give ``traj`` its group's next sample index (its turns' seeds: ``turn_seed``)."""
        traj.info["sample"] = self._samples[traj.group_id]
        self._samples[traj.group_id] += 1
        return traj

    def _room(self, traj: Trajectory) -> int:
        room = self.max_model_len - len(traj.prompt_ids) - len(traj.token_ids)
        if self.cfg.max_total_tokens is not None:
            room = min(room, self.cfg.max_total_tokens - len(traj.token_ids))
        return room

    def _budget_check(self, open_):
        keep, finished = [], []
        for traj, env in open_:
            if self._room(traj) <= 0:
                traj.finish("budget")
                env.close()
                finished.append(traj)
            else:
                keep.append((traj, env))
        return keep, finished

    def _generate(self, open_) -> list[Completion]:
        """One engine call for every open trajectory; the completions in ``open_``'s order.

        A group's first turns with consecutive sample indices (and equal prompt and limit) go as ONE
        request with ``n`` samples, as single-turn generation sends them: the prompt is processed
        once per prompt, and sample j of a request seeded s draws with s + j, which is exactly
        ``turn_seed(prompt seed, sample, 0)``."""
        requests: list[_Request] = []
        for pos, (traj, _) in enumerate(open_):
            limit = min(self.sampling.max_new_tokens, self._room(traj))
            if requests and requests[-1].takes(traj, limit):
                requests[-1].add(pos, traj)
                continue
            seed = None if self._seeds is None else turn_seed(self._seeds[traj.group_id], traj.info["sample"], traj.turns)
            requests.append(_Request(traj.full_ids, limit, seed, [pos], traj))
        sampling = dataclasses.replace(
            self.sampling, max_tokens=tuple(r.limit for r in requests), ns=tuple(len(r.positions) for r in requests),
            seeds=None if self._seeds is None else tuple(r.seed for r in requests),
        )  # fmt: skip
        completions = self.generate([r.ids for r in requests], sampling)
        by_request: list[list[Completion]] = [[] for _ in requests]
        for c in completions:  # a request's samples arrive together, in sample order
            by_request[c.prompt_index].append(c)
        ordered: list[Completion | None] = [None] * len(open_)
        for r, outs in zip(requests, by_request):
            if len(outs) != len(r.positions):
                raise RuntimeError(f"the engines returned {len(outs)} completions for a request of n={len(r.positions)}")
            for pos, c in zip(r.positions, outs):
                ordered[pos] = c
        return ordered  # type: ignore[return-value]

    def _maybe_branch(self, traj, env, seg, after_tool: bool, tree: ArpoTree, stats) -> list:
        entropy = self.entropy_fn(traj, [list(t) for t in seg.top_logprobs])
        if "h_init" not in traj.info:
            traj.info["h_init"] = entropy  # this trajectory's own first segment: the baseline
            return []
        if not after_tool:
            return []
        copies = tree.after_tool(entropy, traj.info["h_init"])
        at = len(traj.segments) - 1  # the prefix that ends with the tool result
        return [(self._number(traj.fork(at)), env.fork()) for _ in range(copies)]

    def _continue(self, traj: Trajectory, c: Completion, result: StepResult) -> bool:
        """Append the observation and keep the trajectory open, or finish it; returns whether it is open."""
        if result.done:
            traj.finish("length" if c.finish_reason == "length" else "stop")
            return False
        if traj.turns >= self.cfg.max_turns:
            traj.finish("max_turns")  # nothing is appended: no unsampled end-of-sequence is trained on
            return False
        eot = self.renderer.end_of_turn(list(c.token_ids))
        obs = self.renderer.observation(result.observation)
        if len(eot) + len(obs) >= self._room(traj):
            traj.finish("budget")
            return False
        if eot:
            traj.append_inserted(eot, kind="end_of_turn")
        traj.append_inserted(obs, kind="observation", text=result.observation)
        traj.info["after_tool"] = True
        return True

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


@dataclasses.dataclass
class _Request:
    """One engine request of a turn: ``ids`` sampled ``len(positions)`` times (positions in ``open_``)."""

    ids: list[int]
    limit: int
    seed: int | None
    positions: list[int]
    last: Trajectory  # the newest trajectory in it

    def takes(self, traj: Trajectory, limit: int) -> bool:
        """Whether ``traj`` is the next sample of this request: both first turns of one group, with
        consecutive sample indices, the same prompt and the same limit."""
        return (
            not traj.segments and not self.last.segments and traj.group_id == self.last.group_id
            and traj.info["sample"] == self.last.info["sample"] + 1 and limit == self.limit and traj.prompt_ids == self.ids
        )  # fmt: skip

    def add(self, position: int, traj: Trajectory) -> None:
        self.positions.append(position)
        self.last = traj


def _safe_step(env: Environment, action: str) -> StepResult:
    """``env.step``; an environment that raises gives an error observation (counted), not a crashed run."""
    try:
        return env.step(action)
    except Exception as err:  # noqa: BLE001
        return StepResult(observation=f"error: {type(err).__name__}: {err}", info={"env_error": True})


@dataclasses.dataclass
class _Stats:
    generate_s: float = 0.0
    env_s: float = 0.0
    tool_calls: int = 0
    tool_errors: int = 0
    tool_s: float = 0.0
    parse_errors: int = 0
    env_errors: int = 0

    def count(self, result: StepResult) -> None:
        for r in result.info.get("tool_results", ()):
            self.tool_calls += 1
            self.tool_errors += not r.ok
            self.tool_s += r.time_s
        self.parse_errors += bool(result.info.get("parse_error"))
        self.env_errors += bool(result.info.get("env_error"))

    def metrics(self, done: list[Trajectory], trees: dict[int, ArpoTree]) -> dict[str, float]:
        n = max(len(done), 1)
        out = {
            "tool/calls_per_sample": self.tool_calls / n,
            "tool/errors": float(self.tool_errors),
            "tool/parse_errors": float(self.parse_errors),
            "tool/env_errors": float(self.env_errors),
            "tool/time_s": self.tool_s,
            "turns/mean": sum(t.turns for t in done) / n,
            "time/env_s": self.env_s,
            "time/turn_generate_s": self.generate_s,
        }
        if trees:
            deltas = [d for t in trees.values() for d in t.deltas]
            out["arpo/branches"] = sum(t.branches for t in trees.values()) / len(trees)
            out["arpo/entropy_delta_mean"] = sum(deltas) / len(deltas) if deltas else 0.0
        return out


def to_completion(traj: Trajectory, tokenizer) -> Completion:
    """A finished trajectory as the trainer's :class:`Completion` (text decoded for the reward only)."""
    return Completion(
        prompt_index=traj.prompt_index, token_ids=traj.token_ids, logprobs=traj.rollout_logprobs,
        text=tokenizer.decode(traj.token_ids, skip_special_tokens=True),
        finish_reason="length" if traj.truncated else "stop",
        info={
            "loss_mask": traj.loss_mask, "env_reward": traj.info.get("env_reward"), "turns": traj.turns,
            "finish": traj.finish_reason, "segments": [(s.uid, len(s.ids)) for s in traj.segments],
            "traj_id": traj.traj_id, "parent_id": traj.parent_id, "prompt_ids": traj.prompt_ids,
        },
    )  # fmt: skip


def with_env_rewards(scores: list[float], completions: list[Completion]) -> list[float]:
    """The reward's ``scores``, except where an environment gave its own final reward
    (``StepResult.reward``, e.g. the Lean verdict of lean_feedback): that replaces the score."""
    return [s if c.info.get("env_reward") is None else float(c.info["env_reward"]) for s, c in zip(scores, completions)]


class AgentRollouts:
    """What :class:`rlkit.trainer.Trainer` calls when the config has an ``env:`` section."""

    def __init__(self, cfg, *, tokenizer, generate: GenerateFn, prompt_renderer) -> None:
        r = cfg.rollout
        field = cfg.data.prompt_field
        self.cfg, self.tokenizer, self._generate = cfg, tokenizer, generate
        self._prompt_ids_for = lambda row, prompt: prompt_renderer.token_ids({**row, field: prompt})
        self.runner = self._runner(SamplingConfig(
            temperature=r.temperature, top_p=r.top_p, top_k=r.top_k, max_new_tokens=r.max_new_tokens, stop=tuple(r.stop)
        ), arpo=r.arpo)  # fmt: skip
        self._eval_runners: dict[tuple, MultiTurnRunner] = {}  # by sampling settings
        self._metrics: dict[str, float] = {}

    def _runner(self, sampling: SamplingConfig, *, arpo: ArpoConfig | None) -> MultiTurnRunner:
        return MultiTurnRunner(
            generate=self._generate, tokenizer=self.tokenizer, env=self.cfg.env, sampling=sampling,
            max_model_len=self.cfg.rollout.max_model_len, arpo=arpo, seed=self.cfg.seed, prompt_ids_for=self._prompt_ids_for,
        )  # fmt: skip

    def generate(
        self, rows: list[dict], prompt_ids: list[list[int]], first_group: int, *, n: int,
        seeds: tuple[int, ...] | None = None,
    ) -> list[Completion]:  # fmt: skip
        """Finished trajectories as completions; ``prompt_index`` indexes ``rows``; ``seeds``: the
        rows' sampling seeds (every turn's seed derives from them, see :meth:`MultiTurnRunner.run`)."""
        groups = [first_group + i for i in range(len(rows))]
        trajectories, metrics = self.runner.run(rows, prompt_ids, groups, n=n, seeds=seeds)
        for key, value in metrics.items():  # summed over dynamic-sampling rounds until taken
            self._metrics[key] = self._metrics.get(key, 0.0) + value
        trajectories.sort(key=lambda t: (t.prompt_index, t.traj_id))
        return [to_completion(t, self.tokenizer) for t in trajectories]

    def evaluate(
        self, rows: list[dict], prompt_ids: list[list[int]], sampling: SamplingConfig
    ) -> tuple[list[Completion], dict[str, float]]:
        """Evaluation episodes: ``sampling.n`` independent multi-turn samples per row, with the
        environment's tools and feedback, at ``sampling``'s temperature (0: greedy), seeded by
        ``sampling.seeds`` as training is; never ARPO-branched (each sample is one episode, so
        mean@k and pass@k mean what they do single-turn). Returns the completions (ordered by row,
        then sample) and the episodes' ``tool/*`` and ``turns/*`` metrics."""
        key = (sampling.temperature, sampling.top_p, sampling.top_k, sampling.max_new_tokens, sampling.stop)
        runner = self._eval_runners.get(key)
        if runner is None:
            runner = self._eval_runners[key] = self._runner(dataclasses.replace(sampling, n=1, seeds=None), arpo=None)
        trajectories, metrics = runner.run(rows, prompt_ids, list(range(len(rows))), n=sampling.n, seeds=sampling.seeds)
        trajectories.sort(key=lambda t: (t.prompt_index, t.traj_id))
        return [to_completion(t, self.tokenizer) for t in trajectories], metrics

    def take_metrics(self) -> dict[str, float]:
        out, self._metrics = self._metrics, {}
        return out

    def close(self) -> None:
        for runner in (self.runner, *self._eval_runners.values()):
            runner.close()
