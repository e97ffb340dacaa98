"""The driver: one GRPO-family training loop, readable top to bottom (:meth:`Trainer.fit`).

The step-level calls (:meth:`generate`, :meth:`score`, :meth:`make_batch`,
:meth:`update`, :meth:`sync_weights`, :meth:`save_checkpoint`) are public so a
custom loop can reorder or replace any of them; ``examples/custom_loop.py``
shows one.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from rlkit.algorithms.arpo import hard_attribution
from rlkit.algorithms import (
    DynamicSamplingBuffer,
    compute_advantages,
    filter_truncated,
    kl_penalty,
    overlong_penalty,
)
from rlkit.batch import TrainBatch, build_batch
from rlkit.config import ExperimentConfig
from rlkit.data import PromptRenderer, PromptSampler, load_prompt_rows
from rlkit.learner.group import LearnerGroup
from rlkit.checkpoint import has_hf_weights, is_sharded
from rlkit.learner.worker import LearnerSpec
from rlkit.memory import PeakMemoryMonitor
from rlkit.models import resolve_model_path
from rlkit.replay import ReplayPool
from rlkit.rewards import build_reward
from rlkit.rollout.multiturn import with_env_rewards
from rlkit.rollout.overlap import RolloutPipeline
from rlkit.rollout.types import Completion, SamplingConfig, sampling_seed
from rlkit.cluster import cluster_resources, create_placement, init_ray, plan_placement
from rlkit.cluster.engines import EnginePool
from rlkit.runtime import setup_logging
from rlkit.run_dir import CHECKPOINTS, atomic_dir, prepare_run_dir, rotate_checkpoints
from rlkit.tracking import RunInfo, RunLogger
from rlkit.tracking.samples import sample_records
from rlkit.user_api import CallbackList, StepCounter, reward_from_callables, rows_from_data

logger = logging.getLogger("rlkit")


@dataclass
class Rollouts:
    """Samples of one step, grouped by prompt: ``group_ids[i]`` names sample i's prompt."""

    rows: list[dict] = field(default_factory=list)
    prompt_ids: list[list[int]] = field(default_factory=list)
    completions: list[Completion] = field(default_factory=list)
    group_ids: list[int] = field(default_factory=list)
    task_scores: list[float] = field(default_factory=list)  # verifier scores, before shaping
    rewards: list[float] = field(default_factory=list)  # after shaping; what advantages use

    def extend(self, other: "Rollouts") -> None:
        for name in self.__dataclass_fields__:
            getattr(self, name).extend(getattr(other, name))

    def __len__(self) -> int:
        return len(self.completions)


class NonFiniteStepError(RuntimeError):
    """``trainer.max_skipped_steps`` optimizer steps in a row had a NaN or inf gradient norm."""


class RewardFailedError(RuntimeError):
    """A reward failed (raised or timed out) on every response of a generation round."""


def on_policy_warning(config: ExperimentConfig) -> str | None:
    """The warning for a clip-style loss trained fully on-policy (one epoch, one mini-batch): the
    ratio is then exactly 1, so clipping, dual clip and ERC change nothing (None otherwise)."""
    from rlkit.algorithms import POLICY_LOSSES

    algo, tcfg = config.algorithm, config.trainer
    clip_style = bool({"clip_low", "clip_high", "dual_clip"} & set(POLICY_LOSSES.defaults(algo.loss)))
    if (clip_style or algo.erc is not None) and tcfg.ppo_epochs == 1 and tcfg.num_mini_batches == 1:
        return (
            f"algorithm.loss={algo.loss} runs fully on-policy (trainer.ppo_epochs=1, trainer.num_mini_batches=1): "
            "old and current log-probs are equal, the ratio is exactly 1 and its clipping"
            + (", ERC" if algo.erc is not None else "")
            + " and dual clip change nothing; set trainer.num_mini_batches (papers: train batch / mini-batch)"
        )
    return None


class Trainer:
    """Builds every part from an :class:`ExperimentConfig`; :meth:`fit` trains.

    Python objects may replace parts of the config (see :mod:`rlkit.user_api`): ``reward_fn`` (a
    callable ``fn(completion, sample) -> float``, or a list of them or of ``(fn, weight)``),
    ``train_data`` / ``eval_data`` (row dicts or a ``datasets.Dataset``) and ``callbacks``
    (``on_step_end(trainer, metrics)``, ``on_eval(trainer, metrics)``, ``on_checkpoint(trainer, path)``;
    any may call :meth:`request_stop`).
    """

    def __init__(
        self, config: ExperimentConfig, *, reward_fn: Any = None, train_data: Any = None, eval_data: Any = None,
        callbacks: Sequence[Any] = (),
    ) -> None:
        from transformers import AutoTokenizer

        setup_logging()
        self.config = cfg = config
        if warning := on_policy_warning(cfg):
            logger.warning(warning)
        self.callbacks = CallbackList(callbacks)
        self.stop_reason: str | None = None
        self.run_dir = cfg.run_dir
        self.checkpoints_dir = Path(cfg.trainer.checkpoint_dir) if cfg.trainer.checkpoint_dir else self.run_dir / CHECKPOINTS
        auto_resume = prepare_run_dir(
            self.run_dir, resume=cfg.trainer.resume, overwrite=cfg.trainer.overwrite, checkpoints=self.checkpoints_dir
        )
        (self.run_dir / "config.yaml").write_text(cfg.to_yaml())
        self.step = 0
        self.last_checkpoint: Path | None = None
        self._skipped_in_a_row = 0  # optimizer steps skipped for a non-finite gradient norm, in a row
        self._next_group_id = 0  # every prompt drawn gets a fresh group id
        self._seed_step, self._step_prompts = -1, 0  # prompts drawn so far in step _seed_step

        self.model_path = str(resolve_model_path(cfg.model.path))
        resume = Path(cfg.trainer.resume_from) if cfg.trainer.resume_from else auto_resume
        # A sharded checkpoint (rlkit/checkpoint.py) is loaded by the learners after they start from
        # model.path; the engines start from its HF form where it has one, and get synced either way.
        sharded = resume is not None and is_sharded(resume)
        weights_path = str(resume) if resume and not sharded else self.model_path
        engine_path = str(resume) if resume and has_hf_weights(resume) else weights_path
        if cfg.model.lora is not None:  # engines serve the base model (adapter sync) or get merged weights
            engine_path = self.model_path
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        self.renderer = PromptRenderer(self.tokenizer, cfg.data)
        if train_data is None:
            self.rows = load_prompt_rows(cfg.data, self.renderer)  # long prompts found here, not mid-run
        else:
            self.rows = self.renderer.drop_long(self._user_rows(train_data, "train_data"), source="train_data")
        self.eval_rows = self._load_eval_rows(eval_data)
        self.sampler = PromptSampler(len(self.rows), seed=cfg.seed, shuffle=cfg.data.shuffle)
        self.reward = reward_from_callables(reward_fn, cfg.reward) if reward_fn is not None else build_reward(cfg.reward)
        self.replay = ReplayPool.load(cfg.replay.pool) if cfg.replay.pool else None
        if resume:
            self._load_trainer_state(resume)

        init_ray(cfg)
        # One placement-group layout for the run, checked against the cluster before any actor starts.
        self.placement = create_placement(
            plan_placement(cfg, cluster_resources()), timeout_s=cfg.ray.startup_timeout_s, name=cfg.name
        )
        self.engine_pool = EnginePool(
            cfg, engine_path, self.placement, on_restart=self._resync_engine, current_step=lambda: self.step
        )
        self.agent = None  # multi-turn rollouts (env: section): rlkit/rollout/multiturn.py
        if cfg.env is not None:
            from rlkit.rollout.multiturn import AgentRollouts

            self.agent = AgentRollouts(cfg, tokenizer=self.tokenizer, generate=self._generate_checked, prompt_renderer=self.renderer)
        spec = LearnerSpec(
            model=cfg.model.model_copy(update={"path": weights_path}), learner=cfg.learner,
            algorithm=cfg.algorithm, temperature=cfg.rollout.temperature,
            total_steps=cfg.trainer.total_steps, norm_len=cfg.rollout.max_new_tokens, seed=cfg.seed,
            reference_path=self.model_path, top_p=cfg.rollout.top_p, top_k=cfg.rollout.top_k,
        )
        try:
            self.learners = LearnerGroup(
                spec, placement=self.placement, call_timeout_s=cfg.ray.call_timeout_s,
                startup_timeout_s=cfg.ray.startup_timeout_s, current_step=lambda: self.step,
            )  # fmt: skip
            self.weight_sync = self._weight_sync()
            self._check_checkpoint_dir()
        except BaseException:
            self.engine_pool.close()  # nothing of a failed start stays on the cluster
            self.placement.remove()
            raise
        if resume:
            self._load_checkpoint(resume, sharded=sharded)
        self.memory = PeakMemoryMonitor()
        async_ = cfg.trainer.async_  # rollouts generated now, or prefetched during the previous step
        self.pipeline = RolloutPipeline(self, enabled=async_.enabled, max_staleness=async_.max_staleness)
        self.tracker = RunLogger(RunInfo(config=cfg, run_dir=self.run_dir, total_steps=cfg.trainer.total_steps,
                                         start_step=self.step + 1))

    # ------------------------------------------------------------------ the loop

    def fit(self) -> Path | None:
        """Train until ``trainer.total_steps`` or a callback's :meth:`request_stop`; returns the final checkpoint."""
        while not self.done:
            self.train_step()
        cfg = self.config.trainer
        last = self.last_checkpoint
        if cfg.save_final and (last is None or last.name != f"step_{self.step}" or not has_hf_weights(last)):
            self.save_checkpoint(hf=True)
        return self.last_checkpoint

    def train_step(self, make_rollouts: Callable[["Trainer"], Rollouts] | None = None) -> dict[str, float]:
        """One whole step (what ``trainer.step()`` runs): rollouts, advantages, update, weight sync, logging,
        samples, validation and checkpoint on schedule, callbacks. ``make_rollouts(trainer)``, if given,
        returns this step's generated and scored :class:`Rollouts` instead of :meth:`collect_rollouts`."""
        cfg = self.config.trainer
        self.step += 1
        started = time.perf_counter()

        if make_rollouts is None:
            rollouts, metrics = self.pipeline.take(cfg.prompts_per_step)
            self.pipeline.launch_next(cfg.prompts_per_step)  # trainer.async: step n+1 generates during training
        else:
            rollouts = make_rollouts(self)
            metrics = {"time/generate_s": time.perf_counter() - started, **_rollout_metrics(rollouts)}
        if self.replay is not None:
            metrics.update(self.add_replayed(rollouts))
        batch = self.make_batch(rollouts)
        metrics.update(self.update(batch))
        waited = self.pipeline.wait()  # a prefetch ends with the weights it started with
        metrics["time/sync_s"] = self.sync_weights()
        metrics.update(self.weight_sync.last)

        metrics["time/step_s"] = time.perf_counter() - started
        if self.pipeline.enabled:
            metrics["time/wait_rollouts_s"] = waited
            busy = metrics["time/train_s"] + metrics["time/sync_s"]
            metrics.update(self.pipeline.step_metrics(step_s=metrics["time/step_s"], learner_busy_s=busy))
        metrics["throughput/tokens_per_s"] = metrics["response/tokens"] / max(metrics["time/generate_s"], 1e-9)
        if self.eval_rows and self.config.eval.every and self.step % self.config.eval.every == 0:
            metrics.update(self.validate())  # after the sync: the engines hold this step's weights
        metrics["memory/step_peak_gib"], metrics["memory/run_peak_gib"] = self.memory.take_peak()
        self.tracker.log_metrics(self.step, metrics)
        log = self.config.log
        if log.samples_every and self.step % log.samples_every == 0:
            adv = batch.advantages  # [B], or [B, R] with ARPO hard attribution: the mean over trained tokens
            adv = adv if adv.dim() == 1 else (adv * batch.response_mask).sum(1) / batch.response_mask.sum(1).clamp(min=1)
            self.tracker.log_samples(self.step, self._sample_records(rollouts, adv.tolist()))
        self.callbacks.fire("on_step_end", self, metrics)
        if cfg.save_every and self.step % cfg.save_every == 0:
            self.save_checkpoint()
        return metrics

    @property
    def step(self) -> StepCounter:
        """The current step number (0 before the first); ``trainer.step()`` runs the next step (:meth:`train_step`)."""
        return StepCounter(self._step, self.train_step)

    @step.setter
    def step(self, value: int) -> None:
        self._step = int(value)

    @property
    def done(self) -> bool:
        """``trainer.total_steps`` reached, or a callback asked to stop."""
        return self._step >= self.config.trainer.total_steps or self.stop_reason is not None

    def request_stop(self, reason: str = "stopped by a callback") -> None:
        """End the run after the current step (:meth:`fit` then saves the final checkpoint as usual)."""
        self.stop_reason = reason
        logger.info("step %d: stop requested: %s", self._step, reason)

    def _sample_records(self, rollouts: Rollouts, advantages: list[float]) -> list[dict]:
        return sample_records(
            rows=rollouts.rows, texts=[c.text for c in rollouts.completions],
            lengths=[len(c.token_ids) for c in rollouts.completions],
            truncated=[c.truncated for c in rollouts.completions], group_ids=rollouts.group_ids,
            task_scores=rollouts.task_scores, rewards=rollouts.rewards, advantages=advantages,
            prompt_field=self.config.data.prompt_field, groups=self.config.log.samples_prompts,
        )

    def validate(self) -> dict[str, float]:
        """Score the eval prompts on the engines now (``eval/mean@k``, ``eval/pass@k``, ``eval/greedy``,
        ``eval/length_mean``; rlkit/validation.py); fires the callbacks' ``on_eval``."""
        from rlkit.validation import run_validation

        if not self.eval_rows:
            raise ValueError("no eval prompts: set eval.every (eval.split / eval.source) or pass eval_data=")
        metrics = run_validation(self)
        self.callbacks.fire("on_eval", self, metrics)
        return metrics

    def _load_eval_rows(self, eval_data: Any) -> list[dict] | None:
        """The first ``eval.prompts`` rows of ``eval_data``, or of ``eval.split`` of ``eval.source``
        when ``eval.every`` is set; checked (fields, prompt length) before anything starts."""
        e = self.config.eval
        if eval_data is not None:
            rows = self._user_rows(eval_data, "eval_data")
            return self.renderer.drop_long(rows, source="eval_data")[: e.prompts]
        if not e.every:
            return None
        data = self.config.data.model_copy(update={"source": e.source or self.config.data.source})
        return load_prompt_rows(data, self.renderer, split=e.split_for(self.config.data))[: e.prompts]

    def _user_rows(self, data: Any, what: str) -> list[dict]:
        d = self.config.data
        return rows_from_data(data, prompt_field=d.prompt_field, required_fields=d.required_fields, what=what)

    # ------------------------------------------------------------------ step-level API

    def next_rows(self, count: int) -> list[dict]:
        """The sampler's next ``count`` prompt rows (seeded, resumable)."""
        return [self.rows[i] for i in self.sampler.next_indices(count)]

    def generate(self, rows: list[dict], *, n: int | None = None, step: int | None = None) -> Rollouts:
        """``n`` (default ``rollout.group_size``) samples per row, spread over the engines.

        The k-th prompt drawn in a step samples with seed ``sampling_seed(seed, step, k)``
        (rlkit/rollout/types.py), so a resumed run samples what the uninterrupted run did. ``step``
        (default: the current one) is the step the samples are for (an overlapped prefetch: the next)."""
        self.weight_sync.check_versions()  # never sample from an engine holding other weights
        r = self.config.rollout
        step = int(self.step) if step is None else step
        if self._seed_step != step:  # prompt k of a step counts across dynamic-sampling rounds
            self._seed_step, self._step_prompts = step, 0
        first, self._step_prompts = self._step_prompts, self._step_prompts + len(rows)
        sampling = SamplingConfig(
            n=n or r.group_size, temperature=r.temperature, top_p=r.top_p, top_k=r.top_k,
            max_new_tokens=r.max_new_tokens, stop=tuple(r.stop),
            seeds=tuple(sampling_seed(self.config.seed, step, first + i) for i in range(len(rows))),
        )
        prompt_ids = [self.renderer.token_ids(row) for row in rows]
        out = Rollouts()
        first_group, self._next_group_id = self._next_group_id, self._next_group_id + len(rows)
        if self.agent is not None:
            completions = self.agent.generate(rows, prompt_ids, first_group, n=n or r.group_size, seeds=sampling.seeds)
        else:
            completions = self.engine_pool.generate(prompt_ids, sampling)
        for c in completions:
            out.rows.append(rows[c.prompt_index])
            out.prompt_ids.append(c.info.get("prompt_ids") or prompt_ids[c.prompt_index])  # an env may render its own
            out.completions.append(c)
            out.group_ids.append(first_group + c.prompt_index)
        return out

    def score(self, rollouts: Rollouts) -> dict[str, float]:
        """Verifier rewards (plus overlong shaping) into ``rollouts``; returns reward metrics."""
        scored = self.reward([c.text for c in rollouts.completions], rollouts.rows)
        for name, first in scored.first_errors.items():  # a reward broken for every item stops the run
            failed = scored.metrics[f"reward/{name}/errors"] + scored.metrics[f"reward/{name}/timeouts"]
            if failed >= len(rollouts):
                raise RewardFailedError(
                    f"step {self.step}: reward {name!r} failed on all {len(rollouts)} responses "
                    f"({int(scored.metrics[f'reward/{name}/timeouts'])} timed out); first error: {first}"
                )
        rollouts.task_scores = with_env_rewards(scored.scores, rollouts.completions)
        rollouts.rewards = self._shaped(rollouts.task_scores, rollouts.completions)
        return dict(scored.metrics)

    def _shaped(self, task_scores: list[float], completions: list[Completion]) -> list[float]:
        """Task scores plus DAPO's overlong shaping, when on: the rewards advantages use."""
        rewards = torch.tensor(task_scores, dtype=torch.float32)
        overlong = self.config.algorithm.overlong
        if overlong.enabled:
            lengths = torch.tensor([_sampled_len(c) for c in completions])
            rewards = rewards + overlong_penalty(
                lengths, max_len=overlong.max_len, cache_len=overlong.cache_len, factor=overlong.penalty_factor
            )
        return rewards.tolist()

    def add_replayed(self, rollouts: Rollouts) -> dict[str, float]:
        """RLEP: append ``replay.per_prompt`` pooled answers to every group (same group id, so fresh and
        replayed answers share one baseline); their old log-probs come from the current policy like any other's."""
        rng = random.Random(self.config.seed * 1_000_003 + self.step)
        extra = Rollouts()
        groups = _group_indices(rollouts.group_ids)
        with_pool = 0
        for group_id, members in groups.items():
            first = members[0]
            drawn = self.replay.sample(rollouts.prompt_ids[first], self.config.replay.per_prompt, rng)
            with_pool += bool(drawn)
            for answer in drawn:
                extra.rows.append(rollouts.rows[first])
                extra.prompt_ids.append(rollouts.prompt_ids[first])
                extra.completions.append(Completion(
                    prompt_index=rollouts.completions[first].prompt_index, token_ids=list(answer.token_ids),
                    logprobs=[0.0] * len(answer.token_ids), text=answer.text,
                    finish_reason="length" if answer.truncated else "stop", info={"replayed": True},
                ))  # fmt: skip
                extra.group_ids.append(group_id)
                extra.task_scores.append(answer.score)
        extra.rewards = self._shaped(extra.task_scores, extra.completions)
        rollouts.extend(extra)
        return {"replay/samples": float(len(extra)), "replay/groups_with_pool": with_pool / max(len(groups), 1)}

    def collect_rollouts(self, num_prompts: int, *, step: int | None = None) -> tuple[Rollouts, dict[str, float]]:
        """Generate and score ``num_prompts`` groups for ``step`` (default: the current one); with DAPO
        dynamic sampling, drop groups whose rewards are all equal and generate more rounds until
        ``num_prompts`` groups survive."""
        ds = self.config.algorithm.dynamic_sampling
        metrics: dict[str, float] = {"time/generate_s": 0.0, "time/reward_s": 0.0}
        buffer = DynamicSamplingBuffer(target_groups=num_prompts, max_gen_batches=ds.max_gen_batches)
        generated = Rollouts()
        while True:
            t = time.perf_counter()
            rollouts = self.generate(self.next_rows(self.config.trainer.prompts_per_generation or num_prompts), step=step)
            metrics["time/generate_s"] += time.perf_counter() - t
            if self.agent is not None:
                metrics.update(self.agent.take_metrics())
            t = time.perf_counter()
            metrics.update(self.score(rollouts))
            metrics["time/reward_s"] += time.perf_counter() - t
            offset = len(generated)
            generated.extend(rollouts)
            metrics.update(_rollout_metrics(generated))
            if not ds.enabled:
                return generated, metrics
            groups = list(_group_indices(rollouts.group_ids).values())
            buffer.add([[offset + i for i in g] for g in groups], metrics=[[rollouts.rewards[i] for i in g] for g in groups])
            if buffer.done:
                break
        metrics.update(buffer.metrics())
        kept = [i for group in buffer.take(multiple_of=1) for i in group]
        if not kept:
            raise RuntimeError(
                f"step {self.step}: dynamic sampling kept no group in {buffer.rounds} generation round(s): "
                "every group's rewards were identical; raise algorithm.dynamic_sampling.max_gen_batches"
            )
        return _select(generated, kept), metrics

    def make_batch(self, rollouts: Rollouts) -> TrainBatch:
        """Advantages over each group, packed into the padded :class:`TrainBatch`."""
        algo = self.config.algorithm
        rewards = torch.tensor(rollouts.rewards, dtype=torch.float32)
        group_ids = torch.tensor(rollouts.group_ids, dtype=torch.long)
        batch = build_batch(
            prompt_ids=rollouts.prompt_ids,
            response_ids=[c.token_ids for c in rollouts.completions],
            rollout_logprobs=[c.logprobs for c in rollouts.completions],
            group_ids=rollouts.group_ids, rewards=rollouts.rewards,
            advantages=torch.zeros(len(rollouts)),
            sft_select=[s >= self.config.sft_threshold for s in rollouts.task_scores],
            replayed=[bool(c.info.get("replayed")) for c in rollouts.completions],
            loss_mask=[c.info["loss_mask"] for c in rollouts.completions] if self.agent is not None else None,
            pad_token_id=self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0,
        )
        if algo.overlong.filter_truncated:
            truncated = torch.tensor([c.truncated for c in rollouts.completions])
            batch.response_mask = filter_truncated(batch.response_mask, truncated).float()
        if algo.kl.enabled:
            batch.ref_logprobs = self.learners.compute_logprobs(batch, with_entropy=False, reference=True)["logprobs"]
            if algo.kl.target == "reward":
                # The learner's old log-probs, not the engine's (as verl does): engine/learner numeric
                # noise stays out of the reward. update() reuses them.
                self._compute_old_logprobs(batch)
                kl = kl_penalty(batch.old_logprobs, batch.ref_logprobs, algo.kl.kind) * batch.response_mask
                rewards = rewards - algo.kl.coef * kl.sum(dim=1)
        batch.advantages = compute_advantages(algo.advantage, rewards, group_ids, **algo.advantage_params).float()
        if algo.attribution == "hard":  # ARPO: a shared prefix token trained once, with its holders' mean advantage
            segments = [c.info["segments"] for c in rollouts.completions]
            batch.advantages, keep = hard_attribution(segments, batch.advantages, batch.response_len)
            batch.response_mask = batch.response_mask * keep
        return batch

    def update(self, batch: TrainBatch) -> dict[str, float]:
        """``ppo_epochs`` x ``num_mini_batches`` optimizer steps on ``batch``; returns metrics."""
        t = time.perf_counter()
        tcfg, algo = self.config.trainer, self.config.algorithm
        metrics: dict[str, float] = {}
        on_policy = tcfg.ppo_epochs == 1 and tcfg.num_mini_batches == 1
        if not on_policy and batch.old_logprobs is None:
            self._compute_old_logprobs(batch)
        if batch.old_logprobs is not None:
            sampled = batch.response_mask  # replayed answers have no engine log-probs
            if batch.replayed is not None:
                sampled = sampled * (~batch.replayed)[:, None]
            metrics["rollout/logprob_diff"] = _masked_mean((batch.rollout_logprobs - batch.old_logprobs).abs(), sampled)
        generator = torch.Generator().manual_seed(self.config.seed * 7919 + self.step)
        steps = []
        for _ in range(tcfg.ppo_epochs):
            order = torch.randperm(batch.size, generator=generator) if not on_policy else torch.arange(batch.size)
            for mini in order.tensor_split(min(tcfg.num_mini_batches, batch.size)):
                steps.append(self.learners.train_mini_batch(batch.select(mini)))
                self._check_skipped(steps[-1])
        self.learners.end_step()
        skipped = sum(s.pop("skipped", 0.0) for s in steps)
        for key in steps[0]:
            metrics[key if "/" in key or key in ("loss", "grad_norm", "lr") else f"actor/{key}"] = (
                sum(s[key] for s in steps) / len(steps)
            )
        metrics["train/skipped_steps"] = skipped
        if "actor/logprob_diff" in metrics:  # on-policy: measured by the learners in the update itself
            metrics["rollout/logprob_diff"] = metrics.pop("actor/logprob_diff")
        metrics["time/train_s"] = time.perf_counter() - t
        return metrics

    def _compute_old_logprobs(self, batch: TrainBatch) -> None:
        """The learners' log-probs (and, for ERC, entropies) of ``batch`` before the update: ``old_logprobs``."""
        old = self.learners.compute_logprobs(batch, with_entropy=self.config.algorithm.erc is not None)
        batch.old_logprobs, batch.old_entropy = old["logprobs"], old["entropy"]

    def _check_skipped(self, result: dict[str, float]) -> None:
        """Count optimizer steps skipped for a NaN/inf gradient norm in a row; stop the run at
        ``trainer.max_skipped_steps`` (before any weight sync, so engines keep finite weights)."""
        if not result.get("skipped"):
            self._skipped_in_a_row = 0
            return
        self._skipped_in_a_row += 1
        terms = ", ".join(
            f"{k}={result[k]:.6g}" for k in ("loss", "policy_loss", "kl", "sft_loss", "grad_norm") if k in result
        )
        logger.warning("step %d: non-finite gradient norm, optimizer step skipped (%s)", self.step, terms)
        limit = self.config.trainer.max_skipped_steps
        if self._skipped_in_a_row >= limit:
            raise NonFiniteStepError(
                f"step {self.step}: {self._skipped_in_a_row} optimizer steps in a row had a non-finite gradient "
                f"norm (trainer.max_skipped_steps={limit}); last loss terms: {terms}. The weights were never "
                "updated with them; check the reward, the advantages and the learning rate"
            )

    def sync_weights(self) -> float:
        """Push the learners' weights into every engine (rlkit/rollout/transport/); returns seconds taken.
        ``weight_sync.last`` holds the sync's metrics (``sync/transport``, ``sync/bytes``...)."""
        t = time.perf_counter()
        self.weight_sync.sync()
        return time.perf_counter() - t

    def _weight_sync(self):
        from rlkit.rollout.transport.sync import SyncSettings, WeightSync

        cfg, plan = self.config, self.placement.plan
        if cfg.model.lora is not None and cfg.model.lora.sync == "adapter":
            return self._adapter_sync()
        settings = SyncSettings(
            mode=cfg.rollout.weight_transport, dtype=cfg.model.dtype,
            bucket_bytes=int(cfg.rollout.weight_bucket_mb * 2**20),
            workers_per_engine=cfg.rollout.tensor_parallel_size * cfg.rollout.pipeline_parallel_size,
            backend="nccl" if plan.learner.gpu and plan.engine.gpu else "gloo", timeout_s=cfg.ray.call_timeout_s,
        )  # fmt: skip
        return WeightSync(self.learners, self.engine_pool, settings, current_step=lambda: self.step)

    def _adapter_sync(self):
        """``model.lora.sync: adapter``: only the LoRA tensors go to the engines (rlkit/rollout/lora_sync.py)."""
        from rlkit.learner.lora import adapter_config_dict
        from rlkit.rollout.lora_sync import LoraAdapterSync

        return LoraAdapterSync(
            self.learners, self.engine_pool, adapter_config=adapter_config_dict(self.config.model.lora, self.model_path),
            timeout_s=self.config.ray.call_timeout_s, current_step=lambda: self.step,
        )  # fmt: skip

    def save_checkpoint(self, path: str | Path | None = None, *, hf: bool | None = None) -> Path:
        """The checkpoint of this step (default ``<trainer.checkpoint_dir>/step_N``), sharded (every learner
        rank writes its shards; rlkit/checkpoint.py), written atomically: into ``step_N.tmp-<pid>``, renamed
        when complete (rlkit/run_dir.py); then ``trainer.keep_last`` rotation and the callbacks'
        ``on_checkpoint``. ``hf`` (default: at the last step with ``trainer.save_final``) adds the HF form."""
        rotate = path is None
        final = Path(path or self.checkpoints_dir / f"step_{self.step}")
        if hf is None:
            hf = self.config.trainer.save_final and self.step >= self.config.trainer.total_steps
        with atomic_dir(final) as tmp:
            self._write_checkpoint(tmp, hf=hf)
        logger.info("saved checkpoint %s", final)
        self.last_checkpoint = final
        if rotate:
            rotate_checkpoints(self.checkpoints_dir, keep_last=self.config.trainer.keep_last)
        self.callbacks.fire("on_checkpoint", self, final)
        return final

    def _write_checkpoint(self, path: Path, *, hf: bool = False) -> Path:
        """The learners' shards (+ the HF form with ``hf``) and ``trainer_state.json``."""
        path.mkdir(parents=True, exist_ok=True)
        self.learners.save_checkpoint(
            str(path.resolve()), self.model_path, with_optimizer=self.config.trainer.save_optimizer, hf=hf
        )
        state = {"step": self.step, "sampler": self.pipeline.sampler_state()}  # before a prefetch's draws
        (path / "trainer_state.json").write_text(json.dumps(state, indent=2))
        return path

    def _load_trainer_state(self, path: Path) -> None:
        state_file = path / "trainer_state.json"
        if not state_file.is_file():
            raise FileNotFoundError(f"trainer.resume_from: {path} has no trainer_state.json")
        state = json.loads(state_file.read_text())
        self.step = state["step"]
        self.sampler.load_state_dict(state["sampler"])

    def _load_checkpoint(self, path: Path, *, sharded: bool) -> None:
        """Learners: the checkpoint's weights, AdamW state and schedule (any world size); engines: synced."""
        if sharded:
            with_optimizer = self.learners.load_checkpoint(str(path.resolve()))
            self.weight_sync.sync()  # the engines started from model.path or the HF form: push the shards' weights
            if with_optimizer:
                logger.info("resumed from %s at step %d with its optimizer state", path, self.step)
                return
        logger.warning(
            "trainer.resume_from: %s has no optimizer state (saved with trainer.save_optimizer=false, or an HF "
            "folder): AdamW starts fresh; the learning-rate schedule continues at step %d", path, self.step,
        )  # fmt: skip
        self.learners.advance_schedule(self.step)

    def _check_checkpoint_dir(self) -> None:
        """Fail before the first step when a learner rank cannot see the driver's checkpoint dir."""
        from rlkit.checkpoint import shared_marker

        marker, token = shared_marker(self.checkpoints_dir)
        try:
            self.learners.check_shared_dir(marker, token)
        finally:
            Path(marker).unlink(missing_ok=True)

    @property
    def engines(self) -> list:
        """The live engine actor handles (a restarted engine replaces its entry)."""
        return self.engine_pool.actors

    def _generate_checked(self, prompt_ids, sampling) -> list:
        """The engines' generate for multi-turn rollouts, refused while an engine holds other weights."""
        self.weight_sync.check_versions()
        return self.engine_pool.generate(prompt_ids, sampling)

    def _resync_engine(self, index: int) -> None:
        """A restarted engine holds the run's starting weights: push the learners' current ones."""
        logger.warning("re-syncing weights after engine %d restarted", index)
        self.weight_sync.resync()

    def close(self) -> None:
        self.pipeline.close()
        self.tracker.close()
        self.memory.stop()
        self.learners.shutdown()
        if self.agent is not None:
            self.agent.close()
        self.engine_pool.close()
        self.placement.remove()
        self.reward.close()

    def __enter__(self) -> "Trainer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _group_indices(group_ids: list[int]) -> dict[int, list[int]]:
    groups: dict[int, list[int]] = {}
    for i, g in enumerate(group_ids):
        groups.setdefault(g, []).append(i)
    return groups


def _select(rollouts: Rollouts, index: list[int]) -> Rollouts:
    out = Rollouts()
    for name in out.__dataclass_fields__:
        values = getattr(rollouts, name)
        setattr(out, name, [values[i] for i in index])
    return out


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> float:
    return float((values * mask).sum() / mask.sum().clamp(min=1))


def _sampled_len(c: Completion) -> int:
    """Response tokens the model sampled (multi-turn: observations and appended tokens excluded)."""
    mask = c.info.get("loss_mask")
    return sum(mask) if mask is not None else len(c.token_ids)


def _rollout_metrics(rollouts: Rollouts) -> dict[str, float]:
    lengths = torch.tensor([_sampled_len(c) for c in rollouts.completions], dtype=torch.float32)
    rewards = torch.tensor(rollouts.rewards, dtype=torch.float32)
    return {
        "reward/mean": float(rewards.mean()),
        "reward/std": float(rewards.std()) if len(rewards) > 1 else 0.0,
        "reward/task_mean": float(torch.tensor(rollouts.task_scores).mean()),
        "response/length_mean": float(lengths.mean()),
        "response/length_max": float(lengths.max()),
        "response/truncated_frac": sum(c.truncated for c in rollouts.completions) / len(rollouts),
        "response/tokens": float(lengths.sum()),
    }
