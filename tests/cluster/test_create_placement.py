"""Placement groups on a real (local) Ray: placed where the plan says, or a clear error in time."""

from __future__ import annotations

import time

import pytest

from rlkit.cluster.devices import CPU_SHARE, DeviceChoice
from rlkit.cluster.placement import PlacementError, PlacementPlan, create_placement, plan_placement
from rlkit.config import load_config


def test_learner_and_engine_groups_are_placed_and_removed(local_ray):
    import ray
    from ray.util.placement_group import placement_group_table

    from rlkit.cluster.ray_init import cluster_resources

    cfg = load_config(None, overrides=["reward.name=math", "learner.world_size=2", "rollout.num_engines=2"])
    placement = create_placement(plan_placement(cfg, cluster_resources()), timeout_s=60, name="probe")
    groups = [placement.learner_group, *placement.engine_groups]
    table = [placement_group_table(g) for g in groups]
    assert [t["strategy"] for t in table] == ["PACK", "STRICT_PACK", "STRICT_PACK"]
    assert [t["state"] for t in table] == ["CREATED"] * 3
    assert table[0]["bundles"] == {0: {"CPU": CPU_SHARE}, 1: {"CPU": CPU_SHARE}}
    assert table[0]["name"].startswith("probe-") and table[0]["name"].endswith("-learners")
    # rank 1's actor options point at bundle 1; engine 1 runs alone in its own group
    assert placement.learner_options(1)["scheduling_strategy"].placement_group_bundle_index == 1
    assert placement.engine_bundles(1) == (placement.engine_groups[1], [0])
    placement.remove()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(placement_group_table(g)["state"] != "REMOVED" for g in groups):
        time.sleep(0.2)
    assert [placement_group_table(g)["state"] for g in groups] == ["REMOVED"] * 3
    assert ray.is_initialized()


def test_a_group_the_cluster_cannot_place_fails_in_time_naming_it(local_ray):
    """Past the totals check (here bypassed) a group can still wait forever, e.g. a STRICT_PACK engine
    larger than any one node: the wait is bounded and the error says which group and what each asks."""
    huge = DeviceChoice(device="cpu", backend="gloo", bundle={"CPU": 64.0})
    small = DeviceChoice(device="cpu", backend="gloo", bundle={"CPU": CPU_SHARE})
    plan = PlacementPlan(learner=small, engine=huge, world_size=1, num_engines=1, engine_size=1)
    started = time.monotonic()
    with pytest.raises(PlacementError) as err:
        create_placement(plan, timeout_s=2, name="toolarge")
    assert time.monotonic() - started < 10
    text = str(err.value)
    assert text.startswith("placement groups not placed after 2 s (ray.startup_timeout_s): engine 0 still waiting;")
    assert "each engine 1 x {'CPU': 64.0} (STRICT_PACK: all on one node)" in text and "nodes: " in text
