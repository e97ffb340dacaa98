"""The run's vLLM engine actors: started in their placement-group bundles, restarted when they die.

A dead engine (its process killed, its node lost) is started again in the same
bundle, re-synced to the current weights through the pool's ``on_restart`` hook,
and the prompts it was generating are generated again; the run goes on.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Callable

from rlkit.cluster.calls import ActorDied, ActorInfo, gather
from rlkit.cluster.devices import actor_resources
from rlkit.cluster.placement import Placement, PlacementPlan, create_placement, plan_placement
from rlkit.config import ExperimentConfig

logger = logging.getLogger("rlkit")

# Quiet the engines' own per-request logging; rlkit prints one line per step.
ENGINE_ENV = {"VLLM_LOGGING_LEVEL": "WARNING", "TOKENIZERS_PARALLELISM": "false"}


def engine_options(placement: Placement, index: int, *, threads: int) -> dict:
    """Ray actor options of engine ``index``: its bundle(s), and the environment vLLM needs there."""
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    group, bundles = placement.engine_bundles(index)
    resources, env = engine_resources(placement.plan, bundles, threads=threads)
    return {
        **resources,
        "runtime_env": {"env_vars": env},
        "scheduling_strategy": PlacementGroupSchedulingStrategy(
            placement_group=group, placement_group_bundle_index=bundles[0],
            placement_group_capture_child_tasks=True,
        ),
    }


def engine_resources(plan: PlacementPlan, bundles: list[int], *, threads: int) -> tuple[dict, dict[str, str]]:
    """What an engine actor asks of its first bundle, and its environment: the CPU path's
    variables only on CPU; a parallel engine's bundle indices for vLLM's Ray executor."""
    env = dict(ENGINE_ENV)
    if not plan.engine.gpu:
        from rlkit.rollout.engine import CPU_ENGINE_ENV

        env.update(CPU_ENGINE_ENV)
        env["OMP_NUM_THREADS"] = str(threads)  # Ray otherwise sets it to num_cpus
    share = plan.learner_share
    if plan.engine_size == 1:
        return actor_resources(plan.engine.bundle, share=share), env
    # vLLM's Ray executor starts one worker per bundle; the engine actor itself only drives them.
    env["VLLM_RAY_BUNDLE_INDICES"] = ",".join(map(str, bundles))
    env["VLLM_RAY_PER_WORKER_GPUS"] = str(plan.engine.bundle.get("GPU", 1.0) * share)
    return {"num_cpus": 0, "num_gpus": 0, "resources": {}}, env


class EnginePool:
    """``rollout.num_engines`` engines, each ready when the constructor returns.

    ``actors`` is the live list of engine handles (a restart replaces an entry).
    """

    def __init__(
        self, cfg: ExperimentConfig, model_path: str, placement: Placement, *,
        on_restart: Callable[[int], None] | None = None, owns_placement: bool = False,
        current_step: Callable[[], int | None] = lambda: None,
    ) -> None:  # fmt: skip
        self.cfg, self.model_path, self.placement = cfg, model_path, placement
        self.owns_placement = owns_placement  # close() removes the placement groups too
        self.on_restart = on_restart
        self.current_step = current_step  # the training step errors name
        self.restarts = 0
        self.last_runs: list = []  # the last generate's chunk runs (rlkit.rollout.work_stealing.ChunkRun)
        n = cfg.rollout.num_engines
        self.actors = [self._start(i) for i in range(n)]
        self.infos = [ActorInfo(f"engine {i}") for i in range(n)]
        try:
            infos = gather(
                [a.ready.remote() for a in self.actors], actors=self.infos, what="engine startup",
                timeout_s=cfg.ray.startup_timeout_s, step=None,
            )  # fmt: skip
        except BaseException:
            self.close()
            raise
        self.infos = [_info(i, info) for i, info in enumerate(infos)]
        logger.info("rollout engines ready: %s", ", ".join(f"{i} in {d['startup_s']:.1f}s" for i, d in zip(self.infos, infos)))

    def _start(self, index: int):
        import ray

        from rlkit.rollout.engine import RolloutEngine

        r = self.cfg.rollout
        threads = r.threads or os.cpu_count() or 1
        options = engine_options(self.placement, index, threads=threads)
        return ray.remote(RolloutEngine).options(**options).remote(
            model_path=self.model_path, dtype=self.cfg.model.dtype, seed=self.cfg.seed + index,
            max_model_len=r.max_model_len, kv_cache_bytes=int(r.kv_cache_gb * (1 << 30)),
            enforce_eager=r.enforce_eager, threads=threads,
            tensor_parallel_size=r.tensor_parallel_size, pipeline_parallel_size=r.pipeline_parallel_size,
            lora_rank=adapter_rank(self.cfg),
            multi_turn=self.cfg.env is not None,  # smaller KV blocks on CPU: prefix caching across turns
        )  # fmt: skip

    def call(self, method: str, *args, what: str | None = None, **kwargs) -> list:
        """``method(*args, **kwargs)`` on every engine, bounded by ``ray.call_timeout_s``."""
        refs = [getattr(a, method).remote(*args, **kwargs) for a in self.actors]
        return gather(refs, actors=self.infos, what=what or method, timeout_s=self.cfg.ray.call_timeout_s, step=self.current_step())

    def restart(self, index: int, cause: Exception) -> None:
        """Start engine ``index`` again in its bundle and re-sync it (``on_restart``)."""
        import ray

        if self.restarts >= self.cfg.ray.max_engine_restarts:
            raise RuntimeError(
                f"{self.infos[index]} died at step {self.current_step()} after {self.restarts} engine restart(s) "
                f"this run (ray.max_engine_restarts={self.cfg.ray.max_engine_restarts})"
            ) from cause
        self.restarts += 1
        logger.warning("%s died at step %s (%s); restarting it in its bundle", self.infos[index], self.current_step(), cause)
        try:
            ray.kill(self.actors[index])
        except Exception:  # noqa: BLE001 - already gone
            pass
        self.actors[index] = self._start(index)
        info = gather(
            [self.actors[index].ready.remote()], actors=[ActorInfo(f"engine {index} (restarted)")],
            what="engine restart", timeout_s=self.cfg.ray.startup_timeout_s, step=self.current_step(),
        )[0]  # fmt: skip
        self.infos[index] = _info(index, info)
        if self.on_restart is not None:
            self.on_restart(index)
        logger.warning("%s restarted in %.1f s and re-synced", self.infos[index], info["startup_s"])

    def generate(self, prompt_ids: list[list[int]], sampling) -> list:
        """Completions for every prompt, in prompt order (each prompt's samples together); each
        completion's ``prompt_index`` indexes ``prompt_ids``. Prompts go to the engines in small
        chunks as each engine frees up (work stealing: rlkit/rollout/work_stealing.py); a dead
        engine is restarted and its chunk generated again."""
        from rlkit.rollout.work_stealing import chunk_indices, default_chunk_size, steal

        size = self.cfg.rollout.chunk_prompts or default_chunk_size(len(prompt_ids), len(self.actors))
        chunks = chunk_indices(len(prompt_ids), size)
        result = steal(
            chunks, num_engines=len(self.actors), submit=lambda i, chunk: self._generate(i, prompt_ids, chunk, sampling),
            infos=lambda i: self.infos[i], on_dead=self.restart, timeout_s=self.cfg.ray.call_timeout_s,
            step=self.current_step(),
        )  # fmt: skip
        self.last_runs = result.runs  # which engine ran which chunk, when (tests, idle accounting)
        return [
            dataclasses.replace(c, prompt_index=chunk[c.prompt_index])
            for chunk, completions in zip(chunks, result.outputs)
            for c in completions
        ]

    def _generate(self, index: int, prompt_ids, shard: list[int], sampling):
        return self.actors[index].generate.remote([prompt_ids[i] for i in shard], sampling.for_prompts(shard))

    def close(self) -> None:
        import ray

        for actor in self.actors:
            try:
                ray.kill(actor)
            except Exception:  # noqa: BLE001 - already gone
                pass
        if self.owns_placement:
            self.placement.remove()


def adapter_rank(cfg: ExperimentConfig) -> int | None:
    """The LoRA rank the engines serve (``model.lora.sync: adapter``), else None (no LoRA in vLLM)."""
    lora = cfg.model.lora
    return lora.rank if lora is not None and lora.sync == "adapter" else None


def _info(index: int, ready: dict) -> ActorInfo:
    return ActorInfo(f"engine {index}", ip=ready["ip"], node_id=ready["node_id"], pid=ready["pid"])


def engines_only_placement(cfg: ExperimentConfig) -> Placement:
    """Placement groups for the engines alone (evaluation, pool collection: no learners)."""
    from rlkit.cluster.ray_init import cluster_resources

    solo = cfg.model_copy(update={"ray": cfg.ray.model_copy(update={"colocate": False})})
    plan = plan_placement(solo, cluster_resources(), with_learners=False)
    return create_placement(plan, timeout_s=cfg.ray.startup_timeout_s, name=f"{cfg.name}-engines")


def start_engines(cfg: ExperimentConfig, model_path: str) -> EnginePool:
    """An :class:`EnginePool` in placement groups of its own (no learners); ``close()`` it when done."""
    return EnginePool(cfg, model_path, engines_only_placement(cfg), owns_placement=True)


def generate_on_engines(engines: "EnginePool | list", prompt_ids: list[list[int]], sampling) -> list:
    """Completions for every prompt spread round-robin over ``engines`` (a pool, or a list of
    engine handles as :func:`start_engines` used to return)."""
    if isinstance(engines, EnginePool):
        return engines.generate(prompt_ids, sampling)
    import ray

    shards = [list(range(i, len(prompt_ids), len(engines))) for i in range(len(engines))]
    futures = [e.generate.remote([prompt_ids[i] for i in idx], sampling.for_prompts(idx)) for e, idx in zip(engines, shards)]
    return [
        dataclasses.replace(c, prompt_index=idx[c.prompt_index])
        for idx, completions in zip(shards, ray.get(futures))
        for c in completions
    ]


__all__ = ["ENGINE_ENV", "EnginePool", "engine_options", "engine_resources", "engines_only_placement", "generate_on_engines", "start_engines"]
