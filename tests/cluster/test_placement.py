"""Placement plans from the config and the cluster's resources (pure: no Ray started)."""

from __future__ import annotations

import pytest

from rlkit.cluster.devices import CPU_SHARE, actor_resources, choose
from rlkit.cluster.placement import PlacementError, plan_placement
from rlkit.config import load_config

CPU_CLUSTER = {"CPU": 2.0, "memory": 1e10, "node:127.0.0.1": 1.0}
GPU_CLUSTER = {"CPU": 64.0, "GPU": 8.0}


def _cfg(*overrides: str):
    return load_config(None, overrides=["reward.name=math", *overrides])


def test_cpu_default_is_a_token_cpu_share_per_bundle():
    plan = plan_placement(_cfg("learner.world_size=2", "rollout.num_engines=2"), CPU_CLUSTER)
    assert plan.learner.device == "cpu" and plan.learner.backend == "gloo"
    assert plan.learner_bundles == [{"CPU": CPU_SHARE}] * 2
    assert plan.engine_bundles == [[{"CPU": CPU_SHARE}], [{"CPU": CPU_SHARE}]]
    assert plan.totals() == {"CPU": pytest.approx(4 * CPU_SHARE)}
    assert actor_resources(plan.learner.bundle) == {"num_cpus": CPU_SHARE, "num_gpus": 0.0, "resources": {}}


def test_gpu_cluster_gets_one_gpu_per_bundle_and_tp_sized_engine_sets():
    """The decision reads the cluster's resources: a GPU cluster gets GPU bundles and NCCL."""
    cfg = _cfg("learner.world_size=4", "rollout.num_engines=2", "rollout.tensor_parallel_size=2")
    plan = plan_placement(cfg, GPU_CLUSTER)
    assert (plan.learner.device, plan.learner.backend) == ("cuda", "nccl")
    assert plan.engine.gpu and plan.engine_size == 2
    assert plan.engine_bundles == [[{"GPU": 1.0, "CPU": 1.0}] * 2] * 2
    assert plan.totals() == {"GPU": 8.0, "CPU": 8.0}


def test_custom_resources_keep_a_cpu_share_and_pick_nodes():
    cfg = _cfg("learner.resources={node1: 1}", "rollout.resources={node2: 0.5}")
    plan = plan_placement(cfg, {**CPU_CLUSTER, "node1": 1.0, "node2": 1.0})
    assert plan.learner_bundles == [{"node1": 1.0, "CPU": CPU_SHARE}]
    assert plan.engine_bundles == [[{"node2": 0.5, "CPU": CPU_SHARE}]]
    assert actor_resources(plan.engine.bundle) == {"num_cpus": CPU_SHARE, "num_gpus": 0.0, "resources": {"node2": 0.5}}


def test_too_much_asked_names_what_was_asked_and_what_the_cluster_has():
    cfg = _cfg("learner.world_size=4", "learner.resources={GPU: 1}", "rollout.resources={GPU: 1}")
    with pytest.raises(PlacementError) as err:
        plan_placement(cfg, {"CPU": 16.0, "GPU": 2.0})
    text = str(err.value)
    assert "asks for {GPU: 5}" in text  # 4 ranks + 1 engine; a GPU bundle gets no CPU share added
    assert "learner.resources -> {'GPU': 1.0} x 4 rank(s)" in text
    assert "the cluster has {CPU: 16, GPU: 2}" in text and "GPU (asked 5, has 2)" in text


def test_a_missing_custom_resource_is_refused():
    with pytest.raises(PlacementError, match=r"short of node9 \(asked 1, has 0\)"):
        plan_placement(_cfg("rollout.resources={node9: 1}"), CPU_CLUSTER)


def test_tensor_parallel_needs_gpu_bundles():
    with pytest.raises(PlacementError, match="tensor_parallel_size x pipeline_parallel_size = 2 needs GPU bundles"):
        plan_placement(_cfg("rollout.tensor_parallel_size=2"), CPU_CLUSTER)


def test_colocated_engines_share_learner_bundles_half_each():
    cfg = _cfg("learner.world_size=2", "rollout.num_engines=2", "ray.colocate=true")
    plan = plan_placement(cfg, GPU_CLUSTER)
    assert plan.engine_bundles == [] and plan.learner_share == 0.5
    assert plan.totals() == {"GPU": 2.0, "CPU": 2.0}
    with pytest.raises(PlacementError, match="need more than the 2 learner bundle"):
        plan_placement(_cfg("learner.world_size=2", "rollout.num_engines=3", "ray.colocate=true"), GPU_CLUSTER)


def test_backend_and_resources_must_agree():
    with pytest.raises(ValueError, match=r"learner.backend=nccl needs GPUs but learner.resources=\{'CPU': 2.0\}"):
        choose(resources={"CPU": 2.0}, cluster=GPU_CLUSTER, backend="nccl", key="learner.resources")
    with pytest.raises(ValueError, match="rollout.resources: every amount must be positive"):
        choose(resources={"GPU": 0.0}, cluster=GPU_CLUSTER, key="rollout.resources")
    assert choose(resources=None, cluster=GPU_CLUSTER, backend="gloo", key="learner.resources").device == "cpu"


def test_engine_environment_cpu_path_only_on_cpu_and_bundle_indices_for_parallel_engines():
    from rlkit.cluster.engines import ENGINE_ENV, engine_resources
    from rlkit.rollout.engine import CPU_ENGINE_ENV

    cpu = plan_placement(_cfg("rollout.resources={node2: 1}"), {**CPU_CLUSTER, "node2": 1.0})
    resources, env = engine_resources(cpu, [0], threads=2)
    assert resources == {"num_cpus": CPU_SHARE, "num_gpus": 0.0, "resources": {"node2": 1.0}}
    assert env == {**ENGINE_ENV, **CPU_ENGINE_ENV, "OMP_NUM_THREADS": "2"}

    gpu = plan_placement(_cfg("rollout.tensor_parallel_size=2", "rollout.pipeline_parallel_size=2"), GPU_CLUSTER)
    resources, env = engine_resources(gpu, [0, 1, 2, 3], threads=2)
    assert resources == {"num_cpus": 0, "num_gpus": 0, "resources": {}}  # vLLM's workers take the GPUs
    assert env == {**ENGINE_ENV, "VLLM_RAY_BUNDLE_INDICES": "0,1,2,3", "VLLM_RAY_PER_WORKER_GPUS": "1.0"}

    one = plan_placement(_cfg("learner.world_size=2", "ray.colocate=true"), GPU_CLUSTER)
    resources, env = engine_resources(one, [0], threads=2)
    assert resources == {"num_cpus": 0.5, "num_gpus": 0.5, "resources": {}}  # half of the learner's GPU
    assert set(CPU_ENGINE_ENV).isdisjoint(env)
