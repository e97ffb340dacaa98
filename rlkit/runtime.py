"""Setup the trainer needs before its loop: Ray, the rollout engines, run directory, logging."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

from rlkit.config import ExperimentConfig

logger = logging.getLogger("rlkit")

# Quiet the engines' own per-request logging; rlkit prints one line per step.
ENGINE_ENV = {"VLLM_LOGGING_LEVEL": "WARNING", "TOKENIZERS_PARALLELISM": "false"}


def init_ray(cfg: ExperimentConfig) -> None:
    """Join the configured cluster, the one a Ray job runs in (``RAY_ADDRESS``), or start a local Ray."""
    import ray

    if ray.is_initialized():
        return
    address = cfg.ray.address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=True)
        return
    # Ray starts workers at niceness 15; rollout and learner actors are the run's
    # main work and must not lose the CPU to anything else on the machine.
    os.environ.setdefault("RAY_worker_niceness", "0")
    # Actors ask for 0 CPUs on the CPU path and set their thread counts explicitly:
    # generation and training alternate, so they time-share the same cores.
    # address="local": never attach to a cluster some other `ray start` left running.
    ray.init(address="local", num_cpus=cfg.ray.num_cpus or os.cpu_count(), include_dashboard=False, log_to_driver=True)


def start_engines(cfg: ExperimentConfig, model_path: str) -> list:
    """``rollout.num_engines`` vLLM engine actors, each ready when this returns."""
    import ray
    import torch

    from rlkit.rollout.engine import engine_actor

    r = cfg.rollout
    threads = r.threads or os.cpu_count() or 1
    gpu = torch.cuda.is_available()
    actor = engine_actor(num_cpus=0, threads=threads, env=ENGINE_ENV)
    if gpu:
        actor = actor.options(num_gpus=1)
    engines = [
        actor.remote(
            model_path=model_path, dtype=cfg.model.dtype, seed=cfg.seed + i, max_model_len=r.max_model_len,
            kv_cache_bytes=int(r.kv_cache_gb * (1 << 30)), enforce_eager=r.enforce_eager, threads=threads,
        )
        for i in range(r.num_engines)
    ]
    infos = ray.get([e.ready.remote() for e in engines])
    logger.info("rollout engines ready: %s", ", ".join(f"{i['startup_s']:.1f}s" for i in infos))
    return engines


def generate_on_engines(engines: list, prompt_ids: list[list[int]], sampling) -> list:
    """Completions for every prompt, the prompts spread round-robin over ``engines``.

    Each completion's ``prompt_index`` is its prompt's index in ``prompt_ids``;
    completions come grouped by engine, each prompt's samples together.
    """
    import dataclasses

    import ray

    shards = [list(range(i, len(prompt_ids), len(engines))) for i in range(len(engines))]
    futures = [e.generate.remote([prompt_ids[i] for i in idx], sampling) for e, idx in zip(engines, shards)]
    return [
        dataclasses.replace(c, prompt_index=idx[c.prompt_index])
        for idx, completions in zip(shards, ray.get(futures))
        for c in completions
    ]


def setup_logging() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


class MetricsLog:
    """``runs/<name>/metrics.jsonl`` (one object per step) plus a console progress line."""

    def __init__(self, run_dir: Path, *, total_steps: int, start_step: int = 1) -> None:
        self.path = run_dir / "metrics.jsonl"
        self.total_steps, self.start_step = total_steps, start_step
        self.started = time.perf_counter()

    def write(self, step: int, metrics: dict[str, float]) -> None:
        record = {"step": step, **{k: _plain(v) for k, v in sorted(metrics.items())}}
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        done = step - self.start_step + 1
        elapsed = time.perf_counter() - self.started
        eta = elapsed / done * (self.total_steps - step)
        print(
            f"step {step}/{self.total_steps} | reward {metrics.get('reward/mean', float('nan')):.3f}"
            f" | len {metrics.get('response/length_mean', float('nan')):.1f}"
            f" | {metrics.get('throughput/tokens_per_s', 0):.0f} tok/s"
            f" | {metrics.get('time/step_s', 0):.1f} s/step | ETA {_duration(eta)}",
            flush=True,
        )


def _plain(value):
    return float(value) if hasattr(value, "__float__") and not isinstance(value, (int, bool)) else value


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"
