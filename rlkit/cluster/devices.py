"""The one place that decides where learners and engines compute: device, backend, Ray bundle.

The decision reads the config and the cluster's resources (``ray.cluster_resources()``),
never the driver's own devices: under ``rlkit submit`` the driver usually runs on a
CPU-only head node while the GPUs sit on workers (DESIGN.md "Beyond one host").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# On CPU, generation and training alternate on the same cores: actors ask Ray for a
# token share of a CPU (a placement-group bundle cannot be empty) and set their
# thread counts themselves, so the demo and the tests fit on 2 cores.
CPU_SHARE = 0.01

# Engines and learners colocated in one bundle (one GPU) each take this much of it.
COLOCATED_SHARE = 0.5


@dataclass(frozen=True)
class DeviceChoice:
    """Where one kind of actor runs: torch device type, process-group backend, one bundle's resources."""

    device: Literal["cpu", "cuda"]
    backend: Literal["gloo", "nccl"]
    bundle: dict[str, float]

    @property
    def gpu(self) -> bool:
        return self.device == "cuda"


def choose(
    *, resources: dict[str, float] | None, cluster: dict[str, float], backend: str = "auto", key: str
) -> DeviceChoice:
    """The device of actors whose bundles are ``resources`` (``key`` is its dotted config path).

    ``resources`` None: one GPU per bundle where the cluster has GPUs, else a CPU share.
    ``backend`` (the learner's ``learner.backend``) "nccl" or "gloo" forces the device.
    """
    if resources is not None and not resources:
        raise ValueError(f"{key}: an empty mapping asks for nothing; leave it unset for the default")
    if resources is None:
        wants_gpu = backend == "nccl" or (backend == "auto" and cluster.get("GPU", 0) >= 1)
        bundle = {"GPU": 1.0, "CPU": 1.0} if wants_gpu else {"CPU": CPU_SHARE}
    else:
        bundle = {name: float(amount) for name, amount in resources.items()}
        if any(amount <= 0 for amount in bundle.values()):
            raise ValueError(f"{key}: every amount must be positive (got {resources})")
        wants_gpu = bundle.get("GPU", 0) > 0
        if not wants_gpu and "CPU" not in bundle:
            bundle["CPU"] = CPU_SHARE
    if backend == "nccl" and not wants_gpu:
        raise ValueError(f"learner.backend=nccl needs GPUs but {key}={resources} asks for none")
    if backend == "gloo":
        wants_gpu = False
    return DeviceChoice(device="cuda" if wants_gpu else "cpu", backend="nccl" if wants_gpu else "gloo", bundle=bundle)


def actor_resources(bundle: dict[str, float], *, share: float = 1.0) -> dict:
    """Ray actor options asking for ``share`` of ``bundle`` (``num_cpus``, ``num_gpus``, ``resources``)."""
    custom = {k: v * share for k, v in bundle.items() if k not in ("CPU", "GPU")}
    return {
        "num_cpus": bundle.get("CPU", 0.0) * share,
        "num_gpus": bundle.get("GPU", 0.0) * share,
        "resources": custom,
    }
