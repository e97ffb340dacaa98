"""Failures you can read, for real: engine processes SIGKILLed between steps and mid-generate
(restarted in their bundle, re-synced, prompts generated again, the run goes on), and a learner
rank SIGKILLed (the run stops naming rank, node and step; the last checkpoint stays intact).

One run (module fixture) on local Ray: tiny Llama, 2 gloo learner ranks, 1 vLLM engine.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal

import pytest

pytestmark = pytest.mark.slow


def _digest(folder) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def run(tiny_llama, parity_reward_module, tiny_run_overrides, tmp_path_factory):
    from rlkit import Trainer, load_config
    from rlkit.cluster.calls import ActorDied

    work = tmp_path_factory.mktemp("failures")
    overrides = tiny_run_overrides(tiny_llama, work, parity_reward_module, "failures")
    cfg = load_config("examples/arithmetic_grpo.yaml", overrides=[
        *overrides, "learner.world_size=2", "trainer.total_steps=1", "trainer.save_final=false",
        "ray.call_timeout_s=300"])
    out: dict = {"pids": [], "nodes": []}
    trainer = Trainer(cfg)
    try:
        pool = trainer.engine_pool
        out["pids"].append(pool.infos[0].pid)
        out["nodes"].append(pool.infos[0].node_id)
        trainer.fit()  # step 1

        os.kill(pool.infos[0].pid, signal.SIGKILL)  # between steps
        trainer.config.trainer.total_steps = 2
        trainer.fit()  # step 2: generate finds the engine dead
        out["pids"].append(pool.infos[0].pid)
        out["nodes"].append(pool.infos[0].node_id)
        out["restarts_after_2"] = pool.restarts

        submit = pool._generate

        def generate_then_kill(index, *args):
            ref = submit(index, *args)  # the request is on its way; now the process dies under it
            if pool.restarts == 1:
                os.kill(pool.infos[index].pid, signal.SIGKILL)
            return ref

        pool._generate = generate_then_kill
        trainer.config.trainer.total_steps = 3
        trainer.fit()  # step 3: killed mid-generate
        pool._generate = submit
        out["pids"].append(pool.infos[0].pid)
        out["restarts_after_3"] = pool.restarts

        checkpoint = trainer.save_checkpoint(hf=True)  # shards and the HF form, both must survive
        out["checkpoint_before"] = _digest(checkpoint)
        out["learner1"] = trainer.learners.infos[1]
        os.kill(trainer.learners.infos[1].pid, signal.SIGKILL)
        trainer.config.trainer.total_steps = 4
        with pytest.raises(ActorDied) as err:
            trainer.fit()  # step 4: rank 1 is gone
        out["learner_error"] = err.value
        out["checkpoint_after"] = _digest(checkpoint)
    finally:
        trainer.close()
    out["metrics"] = [json.loads(line) for line in (work / "failures" / "metrics.jsonl").read_text().splitlines()]
    return out


def test_a_killed_engine_is_restarted_and_the_run_goes_on(run):
    assert [m["step"] for m in run["metrics"]] == [1, 2, 3]
    assert run["restarts_after_2"] == 1 and run["restarts_after_3"] == 2
    assert len(set(run["pids"])) == 3  # a new engine process each time, in the same bundle's node
    assert len(run["nodes"]) == 2 and len(set(run["nodes"])) == 1
    for m in run["metrics"]:
        # The restarted engine serves the current weights: its samples match the learners'.
        assert m["rollout/logprob_diff"] < 1e-3, m
        assert m["response/tokens"] == 4 * 4 * m["response/length_mean"]  # every prompt's group came back


def test_a_dead_learner_rank_stops_the_run_naming_rank_node_and_step(run):
    err, rank1 = run["learner_error"], run["learner1"]
    text = str(err)
    assert err.actor == rank1 and err.step == 4
    assert f"learner rank 1 (node {rank1.ip}, node id {rank1.node_id[:16]}, pid {rank1.pid}) died at step 4" in text
    assert text.startswith(("train_mini_batch:", "compute_logprobs:", "export_weights:"))


def test_the_last_checkpoint_is_left_intact(run):
    assert run["checkpoint_after"] == run["checkpoint_before"]
    files = set(run["checkpoint_before"])  # every rank's shards, the schedule, and (last step) the HF form
    assert {"dcp/.metadata", "dcp/__0_0.distcp", "dcp/__1_0.distcp", "trainer_state.json", "scheduler.json",
            "model.safetensors.index.json"} <= files  # fmt: skip
