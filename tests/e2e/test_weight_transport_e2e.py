"""Both weight transports in a real run on one machine: Ray, a vLLM engine, 2 FSDP2 (gloo) learner ranks.

``shm`` (what ``auto`` picks on one node) and ``broadcast`` (forced; what an engine
on another node gets) each run 2 GRPO steps. After the sync that follows step 1,
the engine's log-probs of step 2's samples agree with the learners' (< 1e-3):
the weights arrived whole, through the transport the metrics name.
"""

from __future__ import annotations

import json

import pytest
import torch

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["auto", "broadcast"])
def run(request, tiny_llama, parity_reward_module, tiny_run_overrides, tmp_path_factory):
    import ray

    from rlkit import Trainer, load_config

    mode = request.param
    work = tmp_path_factory.mktemp(f"transport-{mode}")
    overrides = tiny_run_overrides(tiny_llama, work, parity_reward_module, mode)
    cfg = load_config("examples/arithmetic_grpo.yaml", overrides=[
        *overrides, "learner.world_size=2", "trainer.total_steps=2", "trainer.save_final=false",
        f"rollout.weight_transport={mode}", "rollout.weight_bucket_mb=1",
    ])  # fmt: skip
    probe = [[1, 2, 3, 4, 5, 6, 7, 8], [9, 10, 11, 12]]
    with Trainer(cfg) as trainer:
        trainer.fit()
        after = ray.get(trainer.engines[0].prompt_logprobs.remote(probe))
        learner_sd = trainer.learners.full_state_dict()
        layout = trainer.weight_sync.layout
        versions = list(trainer.weight_sync.loaded)
    metrics = [json.loads(line) for line in (work / mode / "metrics.jsonl").read_text().splitlines()]
    return {"mode": mode, "metrics": metrics, "probe": probe, "after": after, "learner_sd": learner_sd,
            "layout": layout, "versions": versions}  # fmt: skip


def test_logprobs_agree_after_a_sync(run):
    from rlkit.rollout.transport.base import TRANSPORT_CODES

    expected = TRANSPORT_CODES["shm" if run["mode"] == "auto" else "broadcast"]
    assert [m["step"] for m in run["metrics"]] == [1, 2]
    for m in run["metrics"]:
        assert m["rollout/logprob_diff"] < 1e-3, m
        assert m["sync/transport"] == expected
        assert m["grad_norm"] > 0
    assert run["versions"] == [2]  # the engine reported loading the second sync's weights


def test_sync_streams_every_parameter_in_buckets(run):
    layout, sd = run["layout"], run["learner_sd"]
    names = [e.name for e in layout.entries]
    assert sorted(names) == sorted(sd)  # every HF parameter, the tied lm_head once (as the embedding)
    nbytes = sum(t.numel() * t.element_size() for t in sd.values())
    assert nbytes <= layout.nbytes < nbytes + 64 * len(names)  # fp32, each tensor 64-byte aligned
    assert len(layout.buckets) > 1 and layout.largest_bucket <= max(2**20, max(e.nbytes for e in layout.entries))
    assert all(m["sync/bytes"] == layout.nbytes for m in run["metrics"])


def test_engine_serves_the_learners_weights(run, tiny_llama):
    """The engine's log-probs are those of the learners' final weights (not the starting ones)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)
    start = torch.cat(_hf_logprobs(model, run["probe"]))
    missing, unexpected = model.load_state_dict(run["learner_sd"], strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}
    model.tie_weights()
    trained = torch.cat(_hf_logprobs(model, run["probe"]))
    served = torch.tensor([lp for seq in run["after"] for lp in seq])
    assert (trained - start).abs().max() > 1e-3  # the two steps moved the model
    torch.testing.assert_close(served, trained, rtol=0, atol=1e-3)


def _hf_logprobs(model, sequences):
    out = []
    with torch.no_grad():
        for seq in sequences:
            logits = model(torch.tensor([seq])).logits[0, :-1]
            out.append(logits.log_softmax(-1).gather(-1, torch.tensor(seq[1:])[:, None])[:, 0])
    return out
