"""End to end on CPU: Ray + a real vLLM engine + 2 FSDP2 (gloo) learner ranks, 2 GRPO steps.

One training run (module fixture) backs every assertion here: metrics were
logged, vLLM's log-probs agree with the learners' after a weight sync, the
engine's weights really changed, and the checkpoint reloads in transformers
with exactly the learners' weights.
"""

from __future__ import annotations

import json
import pytest
import torch

pytestmark = pytest.mark.slow

REQUIRED_KEYS = {
    "step", "reward/mean", "response/length_mean", "rollout/logprob_diff", "loss", "grad_norm",
    "time/step_s", "time/generate_s", "time/train_s", "time/sync_s",
    "train/tokens_per_s", "train/rank_token_imbalance",
}


@pytest.fixture(scope="module")
def run(tiny_llama, parity_reward_module, tiny_run_overrides, tmp_path_factory):
    from rlkit import Trainer, load_config

    work = tmp_path_factory.mktemp("e2e")
    overrides = tiny_run_overrides(tiny_llama, work, parity_reward_module, "e2e")
    cfg = load_config("examples/arithmetic_grpo.yaml", overrides=[*overrides, "learner.world_size=2", "trainer.total_steps=2"])
    trainer = Trainer(cfg)
    import ray

    probe = [[1, 2, 3, 4, 5, 6, 7, 8], [9, 10, 11, 12]]
    before = ray.get(trainer.engines[0].prompt_logprobs.remote(probe))
    final = trainer.fit()
    after = ray.get(trainer.engines[0].prompt_logprobs.remote(probe))
    learner_sd = trainer.learners.full_state_dict()
    trainer.close()
    metrics = [json.loads(line) for line in (work / "e2e" / "metrics.jsonl").read_text().splitlines()]
    return {"metrics": metrics, "probe": probe, "before": before, "after": after, "final": final, "learner_sd": learner_sd,
            "run_dir": work / "e2e"}


def test_every_step_logs_the_required_metrics(run):
    assert [m["step"] for m in run["metrics"]] == [1, 2]
    for record in run["metrics"]:
        assert REQUIRED_KEYS <= set(record), REQUIRED_KEYS - set(record)
        assert record["grad_norm"] > 0  # parity reward has variance: a real gradient flowed
        assert record["train/tokens_per_s"] > 0 and 1.0 <= record["train/rank_token_imbalance"] < 2.0  # 2 ranks
    assert (run["run_dir"] / "config.yaml").is_file()


def test_vllm_logprobs_match_learner_after_sync(run):
    # Step 2 samples with weights synced after step 1's update (fp32 on both sides).
    assert run["metrics"][1]["rollout/logprob_diff"] < 1e-3
    assert run["metrics"][0]["rollout/logprob_diff"] < 1e-3


def _hf_logprobs(model, sequences):
    out = []
    with torch.no_grad():
        for seq in sequences:
            logits = model(torch.tensor([seq])).logits[0, :-1]
            out.append(logits.log_softmax(-1).gather(-1, torch.tensor(seq[1:])[:, None])[:, 0])
    return out


def test_engine_serves_the_trained_weights(run):
    """The engine's weights changed, and now give the saved checkpoint's log-probs."""
    from transformers import AutoModelForCausalLM

    before = torch.tensor([lp for seq in run["before"] for lp in seq])
    after = torch.tensor([lp for seq in run["after"] for lp in seq])
    assert (after - before).abs().max() > 1e-3  # lr 1e-3 for 2 steps moves the random model
    model = AutoModelForCausalLM.from_pretrained(run["final"], dtype=torch.float32)
    reference = torch.cat(_hf_logprobs(model, run["probe"]))
    torch.testing.assert_close(after, reference, rtol=0, atol=1e-3)


def test_checkpoint_reloads_in_transformers_with_learner_weights(run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(run["final"], dtype=torch.float32)
    AutoTokenizer.from_pretrained(run["final"])
    state = model.state_dict()
    for name, tensor in run["learner_sd"].items():
        torch.testing.assert_close(state[name], tensor, rtol=0, atol=0)
    assert json.loads((run["final"] / "trainer_state.json").read_text())["step"] == 2


def test_resume_continues_the_run_from_its_checkpoint(run, tiny_llama, parity_reward_module, tiny_run_overrides, tmp_path):
    """``trainer.resume_from``: the step, weights and optimizer state come back; training goes on at step 3."""
    from rlkit import Trainer, load_config
    from rlkit.checkpoint import SCHEDULER_FILE, is_sharded

    assert is_sharded(run["final"]) and (run["final"] / SCHEDULER_FILE).is_file()  # shards + optimizer state
    overrides = tiny_run_overrides(tiny_llama, tmp_path, parity_reward_module, "resumed")
    cfg = load_config(
        "examples/arithmetic_grpo.yaml",
        overrides=[*overrides, "trainer.total_steps=3", f"trainer.resume_from={run['final']}"],
    )
    trainer = Trainer(cfg)
    try:
        assert trainer.step == 2
        resumed = trainer.learners.full_state_dict()
        for name, tensor in run["learner_sd"].items():
            torch.testing.assert_close(resumed[name], tensor, rtol=0, atol=0)
        trainer.fit()
    finally:
        trainer.close()
    metrics = [json.loads(line) for line in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [3] and metrics[0]["grad_norm"] > 0
    assert metrics[0]["rollout/logprob_diff"] < 1e-3  # the engine started from the checkpoint's weights
