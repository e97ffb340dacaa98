"""Joining Ray: the configured cluster, the one a Ray job runs in, or a local one."""

from __future__ import annotations

import os

from rlkit.config import ExperimentConfig


def init_ray(cfg: ExperimentConfig) -> None:
    """Join ``ray.address``, the cluster of a Ray job (``RAY_ADDRESS``), or start a local Ray."""
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
    # On the CPU path actors ask for a token CPU share and set their thread counts
    # explicitly (rlkit.cluster.devices): generation and training time-share the cores.
    # address="local": never attach to a cluster some other `ray start` left running.
    ray.init(address="local", num_cpus=cfg.ray.num_cpus or os.cpu_count(), include_dashboard=False, log_to_driver=True)


def cluster_resources() -> dict[str, float]:
    """What the cluster has in total (every node), as placement checks read it."""
    import ray

    return {k: float(v) for k, v in ray.cluster_resources().items()}
