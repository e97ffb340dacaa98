"""trainer.async end to end on CPU (tiny model, 1 vLLM engine, 1 learner rank, 3 steps): the engines
generate step n+1 with step n-1's weights while the learners train step n.

Checks: every sample records the weight version the engine held when it sampled (step 1 and 2:
version 0; step 3: the version the engine reported after step 1's sync), staleness never exceeds
trainer.async.max_staleness (0 at step 1, 1 after), the truncated-IS correction ran, the idle
fractions are logged, and the step-2 checkpoint stores the sampler from before step 3's prefetch.
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tiny_llama, parity_reward_module, tiny_run_overrides, tmp_path_factory):
    import ray

    from rlkit import Trainer, load_config

    work = tmp_path_factory.mktemp("async")
    overrides = tiny_run_overrides(tiny_llama, work, parity_reward_module, "async")
    cfg = load_config("examples/arithmetic_grpo.yaml", overrides=[
        *overrides, "trainer.total_steps=3", "trainer.save_every=2", "trainer.save_final=false",
        "trainer.async.enabled=true", "trainer.async.max_staleness=1",
    ])  # fmt: skip
    seen = []

    class Record:
        def on_step_end(self, trainer, metrics):
            reported = ray.get(trainer.engines[0].ready.remote())["weight_version"]  # after this step's sync
            seen.append({"versions": list(trainer.pipeline.last_versions), "engine_after": reported,
                         "learner_after": trainer.weight_sync.version})  # fmt: skip

    with Trainer(cfg, callbacks=[Record()]) as trainer:
        trainer.fit()
    metrics = [json.loads(line) for line in (work / "async" / "metrics.jsonl").read_text().splitlines()]
    state = json.loads((work / "async" / "checkpoints" / "step_2" / "trainer_state.json").read_text())
    return {"metrics": metrics, "seen": seen, "state": state, "prompts": cfg.trainer.prompts_per_step}


def test_each_sample_records_the_engines_weight_version(run):
    seen = run["seen"]
    assert [s["engine_after"] for s in seen] == [1, 2, 3] == [s["learner_after"] for s in seen]
    assert len(seen[0]["versions"]) == 16  # 4 prompts x 4 samples
    assert set(seen[0]["versions"]) == {0}  # step 1: generated before any update
    assert set(seen[1]["versions"]) == {0}  # step 2: generated during step 1, before its sync
    assert set(seen[2]["versions"]) == {seen[0]["engine_after"]}  # step 3: with the weights synced after step 1


def test_staleness_never_exceeds_the_bound(run):
    m = run["metrics"]
    assert [r["step"] for r in m] == [1, 2, 3]
    assert [r["async/staleness_max"] for r in m] == [0.0, 1.0, 1.0]
    assert [r["async/staleness_mean"] for r in m] == [0.0, 1.0, 1.0]
    for r in m:
        assert 0.0 <= r["time/learner_idle_frac"] <= 1.0 and 0.0 <= r["time/engine_idle_frac"] <= 1.0
        assert r["time/wait_rollouts_s"] >= 0.0
        assert 0.0 < r["rollout/is_weight_mean"] <= 2.0  # truncated IS (async's default correction) ran
        assert r["grad_norm"] > 0


def test_checkpoint_stores_the_sampler_before_the_prefetch(run):
    # Saved at the end of step 2, when step 3's prompts were already drawn by the prefetch:
    # a resume must draw them again, so the stored position is after steps 1 and 2 only.
    assert run["state"]["step"] == 2
    assert run["state"]["sampler"]["position"] == 2 * run["prompts"]
