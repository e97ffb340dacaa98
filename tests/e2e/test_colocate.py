"""``ray.colocate``: the engine runs inside the learners' placement group (no group of its own)."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


def test_a_colocated_engine_shares_the_learner_bundle_and_trains(tiny_llama, parity_reward_module, tiny_run_overrides,
                                                                 tmp_path):
    from ray.util.placement_group import placement_group_table

    from rlkit import Trainer, load_config

    overrides = tiny_run_overrides(tiny_llama, tmp_path, parity_reward_module, "colocated")
    cfg = load_config("examples/arithmetic_grpo.yaml", overrides=[
        *overrides, "learner.world_size=2", "trainer.total_steps=2", "trainer.save_final=false", "ray.colocate=true"])
    with Trainer(cfg) as trainer:
        placement = trainer.placement
        assert placement.engine_groups == []
        table = placement_group_table(placement.learner_group)
        assert table["strategy"] == "PACK" and len(table["bundles"]) == 2
        assert placement.engine_bundles(0) == (placement.learner_group, [0])
        assert trainer.engine_pool.infos[0].node_id == trainer.learners.infos[0].node_id
        trainer.fit()
    metrics = [json.loads(line) for line in (tmp_path / "colocated" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2]
    assert all(m["rollout/logprob_diff"] < 1e-3 for m in metrics), metrics
