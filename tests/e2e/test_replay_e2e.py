"""RLEP end to end on CPU: collect a pool of verified answers with vLLM, then train one step replaying it."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


def test_collect_a_pool_then_train_with_replay(tiny_llama, parity_reward_module, tiny_run_overrides, tmp_path):
    from rlkit import Trainer, load_config
    from rlkit.replay import ReplayPool, prompt_key
    from rlkit.replay.collect import collect_pool

    overrides = [*tiny_run_overrides(tiny_llama, tmp_path, parity_reward_module, "rlep"), "data.shuffle=false"]
    cfg = load_config("examples/arithmetic_grpo.yaml", overrides=[*overrides, "trainer.total_steps=1"])
    pool_path = tmp_path / "pool.jsonl"
    stats = collect_pool(cfg, checkpoint=str(tiny_llama), out=str(pool_path), samples=8, num_prompts=8, chunk_prompts=4)

    assert (stats.prompts, stats.answers) == (8, 64)
    assert 0 < stats.correct < 64  # the parity reward: about half the answers
    pool = ReplayPool.load(pool_path)
    assert len(pool) == stats.pooled_prompts > 0 and pool.num_responses == stats.pooled_answers
    for line in pool_path.read_text().splitlines():
        record = json.loads(line)
        assert record["prompt_key"] == prompt_key(record["prompt_ids"]) and len(record["responses"]) >= 2
        assert all(r["score"] == 1.0 and len(r["text"]) % 2 == 0 for r in record["responses"])

    replay_cfg = load_config(
        "examples/arithmetic_grpo.yaml",
        overrides=[*overrides, "name=rlep-train", "trainer.total_steps=1", f"replay.pool={pool_path}",
                   "replay.per_prompt=2", "trainer.save_final=false"],
    )  # fmt: skip
    with Trainer(replay_cfg) as trainer:
        first_rows = [trainer.renderer.token_ids(row) for row in trainer.rows[:4]]  # step 1's prompts (no shuffle)
        trainer.fit()
    pooled = sum(bool(pool.responses(ids)) for ids in first_rows)
    assert pooled > 0  # some of step 1's prompts have a pool, so replay really happened
    (metrics,) = [json.loads(line) for line in (tmp_path / "rlep-train" / "metrics.jsonl").read_text().splitlines()]
    assert metrics["replay/samples"] == 2 * pooled
    assert metrics["replay/groups_with_pool"] == pooled / 4
    assert metrics["rollout/logprob_diff"] < 1e-3  # replayed answers (no engine log-probs) are left out of it
    assert metrics["grad_norm"] > 0
