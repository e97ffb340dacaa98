"""Where a step's rollouts come from: generated now (synchronous), or prefetched while the learners
trained the previous step (``trainer.async``: one-step-off-policy overlap).

Synchronous (the default), step n::

    generate+score(n) [engines]  ->  train(n) [learners]  ->  sync weights v_n

Overlapped, step n (the engines hold ``v_{n-1}``, the weights after step n-1)::

    take batch n (prefetched during step n-1, sampled with v_{n-2})
    launch generate+score(n+1) with v_{n-1}   ||   train(n) on batch n
    wait for batch n+1                        ->   sync weights v_n

so each pool works while the other does. A sample's *staleness* is the learners' weight version
when it is trained minus the version that sampled it (each completion records the engine's
``weight_version``): 1 here, 0 for the first step (nothing to overlap with yet) and for the step after
a resume. Admission: a generation is launched ahead only when its staleness at training time would be
<= ``trainer.async.max_staleness``; otherwise the step waits for the sync and generates then. Samples
are never dropped for staleness after the fact (dropping biases training toward short answers, which
finish first). The loss corrects for the older sampler with the truncated importance weights of
:mod:`rlkit.algorithms.rollout_correction` (``min(π_old/π_behaviour, C)``, the behaviour log-probs
being the engine's). The engines reset their prefix cache with every weight version they load
(``RolloutEngine.load_weights``), so no KV computed with older weights is reused.

Checkpoints store the sampler position from before the prefetch's draws: a resumed run draws the
same prompts with the same seeds for its next step, generated then with the checkpoint's weights
(one version newer than the uninterrupted run used), i.e. the resume restarts the pipeline.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from rlkit.trainer import Rollouts, Trainer

logger = logging.getLogger("rlkit")

__all__ = ["RolloutPipeline", "idle_fractions", "sample_staleness"]


def sample_staleness(sample_versions: list[int | None], learner_version: int) -> list[int]:
    """Staleness of each sample: ``learner_version − sample version`` (samples without a version,
    e.g. replayed answers, are left out)."""
    return [learner_version - v for v in sample_versions if v is not None]


def idle_fractions(*, step_s: float, learner_busy_s: float, engine_busy_s: float) -> dict[str, float]:
    """``time/learner_idle_frac`` and ``time/engine_idle_frac``: the share of the step's wall time
    each pool was not computing (learners: update + weight export; engines: generation)."""
    step_s = max(step_s, 1e-9)
    return {
        "time/learner_idle_frac": min(max(1.0 - learner_busy_s / step_s, 0.0), 1.0),
        "time/engine_idle_frac": min(max(1.0 - engine_busy_s / step_s, 0.0), 1.0),
    }


@dataclass
class _Prefetch:
    step: int
    future: Future
    sampler_state: dict  # the sampler before this prefetch drew its prompts (what a checkpoint stores)


class RolloutPipeline:
    """The trainer's source of rollouts (sync, or overlapped with ``trainer.async.enabled``)."""

    def __init__(self, trainer: Trainer, *, enabled: bool, max_staleness: int) -> None:
        self.trainer = trainer
        self.enabled, self.max_staleness = enabled, max_staleness
        self._pending: _Prefetch | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rlkit-prefetch") if enabled else None
        self._engine_busy_s = 0.0  # generation seconds that ran during the current step
        self.last_versions: list[int | None] = []  # weight version of each sample of the last batch taken

    # ------------------------------------------------------------------ per step

    def take(self, num_prompts: int) -> tuple[Rollouts, dict[str, float]]:
        """This step's generated and scored rollouts and their metrics (with ``async/staleness_*``)."""
        t = self.trainer
        pending, self._pending = self._pending, None
        if pending is not None and pending.step == int(t.step):
            rollouts, metrics = pending.future.result()
        else:
            rollouts, metrics = t.collect_rollouts(num_prompts)
            self._engine_busy_s += metrics["time/generate_s"]
        metrics = dict(metrics)
        metrics.update(self._staleness(rollouts))
        return rollouts, metrics

    def launch_next(self, num_prompts: int) -> None:
        """Start generating the next step's batch on the engines (async only), if admitted."""
        t = self.trainer
        step = int(t.step) + 1
        if not self.enabled or step > t.config.trainer.total_steps or t.stop_reason is not None:
            return
        # The pipeline runs one step ahead: this batch is trained after this step's sync, one weight
        # version past the engines' current one, so its samples will be 1 stale.
        if self.max_staleness < 1:
            return  # not admitted: the step generates after the sync instead
        state = t.sampler.state_dict()
        self._pending = _Prefetch(
            step=step, future=self._executor.submit(t.collect_rollouts, num_prompts, step=step), sampler_state=state
        )

    def wait(self) -> float:
        """Block until the prefetch (if any) has finished generating; returns the seconds waited.
        Called before the weight sync, so every sample of a prefetched batch has one version."""
        if self._pending is None:
            return 0.0
        started = time.perf_counter()
        _, metrics = self._pending.future.result()  # re-raises a generation error here, in the driver
        self._engine_busy_s += metrics["time/generate_s"]
        return time.perf_counter() - started

    def step_metrics(self, *, step_s: float, learner_busy_s: float) -> dict[str, float]:
        """Idle fractions of the step that just ended (then the engine clock restarts)."""
        busy, self._engine_busy_s = self._engine_busy_s, 0.0
        return idle_fractions(step_s=step_s, learner_busy_s=learner_busy_s, engine_busy_s=busy)

    def sampler_state(self) -> dict:
        """The sampler position a checkpoint stores: before a prefetched, not yet trained batch's draws."""
        if self._pending is not None:
            return self._pending.sampler_state
        return self.trainer.sampler.state_dict()

    def close(self) -> None:
        if self._executor is not None:
            if self._pending is not None:
                self._pending.future.cancel()
                try:
                    self._pending.future.result()
                except Exception as err:  # noqa: BLE001 - an unused prefetch's failure does not matter at close
                    logger.info("an unused prefetched batch failed at close: %s", err)
            self._executor.shutdown(wait=True)
            self._pending = None

    # ------------------------------------------------------------------ staleness

    def _staleness(self, rollouts: Rollouts) -> dict[str, float]:
        """``async/staleness_mean`` / ``_max`` of the batch about to be trained; a sample past
        ``max_staleness`` is an error (admission prevents it), never silently dropped."""
        t = self.trainer
        self.last_versions = [c.info.get("weight_version") for c in rollouts.completions]
        stale = sample_staleness(self.last_versions, t.weight_sync.version)
        if not self.enabled or not stale:
            return {}  # synchronous: WeightSync.check_versions already refuses a stale engine
        bound = self.max_staleness
        if max(stale) > bound:
            raise RuntimeError(
                f"step {int(t.step)}: a sample generated with weight version {t.weight_sync.version - max(stale)} would "
                f"be trained at version {t.weight_sync.version} (staleness {max(stale)} > trainer.async.max_staleness="
                f"{bound}); admission should have made it wait"
            )
        return {"async/staleness_mean": sum(stale) / len(stale), "async/staleness_max": float(max(stale))}
