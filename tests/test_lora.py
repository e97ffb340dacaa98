"""LoRA through PEFT on the learner (rlkit/learner/lora.py): config errors, adapter-only training and
optimizer state on 1 and 2 FSDP2 (gloo) ranks, merged weights, checkpoints, resume and ``export --merge``.

The tiny Llama has 2 layers x 7 linear modules (q, k, v, o, gate, up, down): 28 adapter tensors.
"""

from __future__ import annotations

import os

import pytest
import torch

ADAPTER_TENSORS = 2 * 7 * 2  # layers x linear modules x (lora_A, lora_B)


# ------------------------------------------------------------------ config


def test_lora_config_errors_name_the_key(tmp_path):
    from rlkit.config import ConfigError, load_config

    path = tmp_path / "c.yaml"
    path.write_text("model: {path: /x, lora: {rank: 16}}\n")
    loaded = load_config(path)
    assert (loaded.model.lora.rank, loaded.model.lora.alpha, loaded.model.lora.sync) == (16, 64.0, "adapter")
    assert loaded.model.lora.target_modules == "all-linear"
    for bad, key in [
        ("{rank: 0}", "model.lora.rank"),
        ("{rank: 1024}", "model.lora.rank"),
        ("{sync: full}", "model.lora.sync"),
        ("{target_modules: []}", "model.lora"),
        ("{target_modules: all}", "model.lora"),
        ("{dropout: 1.0}", "model.lora.dropout"),
        ("{rnak: 8}", "model.lora.rnak"),
    ]:
        path.write_text(f"model: {{path: /x, lora: {bad}}}\n")
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            load_config(path)


def test_vllm_max_lora_rank_rounds_up():
    from rlkit.rollout.lora_sync import vllm_max_lora_rank

    assert [vllm_max_lora_rank(r) for r in (1, 2, 8, 9, 32, 33, 64, 300, 512)] == [1, 8, 8, 16, 32, 64, 64, 320, 512]
    with pytest.raises(ValueError, match="model.lora.rank"):
        vllm_max_lora_rank(513)


# ------------------------------------------------------------------ learner ranks


def _batch():
    from rlkit.batch import build_batch

    g = torch.Generator().manual_seed(7)
    prompts = [torch.randint(3, 200, (5,), generator=g).tolist() for _ in range(4)]
    responses = [torch.randint(3, 200, (4,), generator=g).tolist() for _ in range(4)]
    return build_batch(
        prompt_ids=prompts, response_ids=responses, rollout_logprobs=[[-1.0] * 4 for _ in range(4)],
        group_ids=[0, 0, 1, 1], rewards=[1.0, 0.0, 1.0, 0.0], advantages=torch.tensor([1.0, -1.0, 0.5, -0.5]),
        pad_token_id=0,
    )  # fmt: skip


def _spec(model_path, world_size, *, gradient_checkpointing=True):
    from rlkit.algorithm_config import AlgorithmConfig
    from rlkit.config import LearnerConfig, LoraConfig, ModelConfig
    from rlkit.learner.worker import LearnerSpec

    return LearnerSpec(
        model=ModelConfig(path=str(model_path), gradient_checkpointing=gradient_checkpointing,
                          lora=LoraConfig(rank=4, alpha=8)),
        learner=LearnerConfig(world_size=world_size, backend="gloo", micro_batch_size=2, threads=1, lr=1e-2),
        algorithm=AlgorithmConfig(), temperature=1.0, total_steps=2, norm_len=8,
    )  # fmt: skip


def _rank_main(rank: int, world_size: int, spec, port: int, out: str, ckpt: str, resume: bool) -> None:
    from rlkit.learner.lora import merged_tensors
    from rlkit.learner.worker import LearnerWorker

    worker = LearnerWorker(rank=rank, world_size=world_size, spec=spec)
    info = worker.setup("127.0.0.1", port)
    result = {"info": info}
    if resume:
        result["with_optimizer"] = worker.load_checkpoint(ckpt)
        result["state_names"] = worker.optimizer_state_names()
        result["adapter"] = worker.adapter_tensors()
    else:
        before = {n: p.detach().full_tensor().clone() if hasattr(p, "full_tensor") else p.detach().clone()
                  for n, p in worker.policy.hf.named_parameters()}  # fmt: skip
        batch = _batch()
        shard = batch.shards(world_size)[rank]
        result["metrics"] = worker.train_mini_batch(shard, **batch.loss_totals())
        after = {n: p.detach().full_tensor().clone() if hasattr(p, "full_tensor") else p.detach().clone()
                 for n, p in worker.policy.hf.named_parameters()}  # fmt: skip
        result["changed"] = sorted(n for n in before if not torch.equal(before[n], after[n]))
        result["state_names"] = worker.optimizer_state_names()
        result["adapter"] = worker.adapter_tensors()
        result["merged"] = {n: t.clone() for n, t in merged_tensors(worker.policy.hf)}
        result["after"] = after
        if ckpt:
            worker.save_checkpoint(ckpt, spec.model.path, with_optimizer=True, hf=True)
    if rank == 0:
        torch.save(result, out)
    torch.distributed.barrier()
    worker.shutdown()
    os._exit(0)


def _run(spec, world_size, tmp_path, *, ckpt="", resume=False, tag="") -> dict:
    import torch.multiprocessing as mp

    from rlkit.learner.worker import free_port

    out = str(tmp_path / f"result-{world_size}{tag}.pt")
    mp.spawn(_rank_main, args=(world_size, spec, free_port(), out, ckpt, resume), nprocs=world_size, join=True)
    return torch.load(out, weights_only=False)


@pytest.fixture(scope="module")
def one_rank(tiny_llama, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lora1")
    ckpt = tmp / "step_1"
    ckpt.mkdir()
    return _run(_spec(tiny_llama, 1), 1, tmp, ckpt=str(ckpt)), ckpt


def test_only_adapters_train_and_hold_optimizer_state(one_rank):
    result, _ = one_rank
    names = result["state_names"]
    assert len(names) == ADAPTER_TENSORS
    assert all(".lora_A." in n or ".lora_B." in n for n in names), names
    # B starts at zero, so A's first gradient is zero: only the B matrices move in step 1, no base weight.
    assert result["changed"] and all(".lora_B." in n for n in result["changed"]), result["changed"]
    assert len(result["changed"]) == ADAPTER_TENSORS // 2
    info = result["info"]
    # 2 layers x r=4 x (q 128+128, k 128+64, v 128+64, o 128+128, gate 128+256, up 128+256, down 256+128)
    assert info["trainable_params_local"] == 2 * 4 * (256 + 192 + 192 + 256 + 384 + 384 + 384)


def test_adapter_tensors_are_peft_named_copies(one_rank):
    result, _ = one_rank
    adapter = result["adapter"]
    assert len(adapter) == ADAPTER_TENSORS
    key = "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"
    assert adapter[key].shape == (128, 4)
    live = result["after"]["model.layers.0.self_attn.q_proj.lora_B.default.weight"]
    torch.testing.assert_close(adapter[key], live, rtol=0, atol=0)
    assert float(adapter[key].abs().max()) > 1e-3  # the step moved B off zero


def test_merged_weights_equal_peft_merge(one_rank, tiny_llama):
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from rlkit.learner.lora import peft_config

    result, _ = one_rank
    merged = result["merged"]
    assert not any("lora" in n or "base_layer" in n for n in merged)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)
    peft_model = get_peft_model(model, peft_config(_spec(tiny_llama, 1).model.lora))
    peft_model.base_model.model.load_state_dict(result["after"], strict=False)
    reference = dict(peft_model.merge_and_unload().named_parameters())
    assert set(merged) == set(reference)
    for name, tensor in merged.items():
        torch.testing.assert_close(tensor, reference[name], rtol=0, atol=1e-6)
    q = "model.layers.0.self_attn.q_proj.weight"
    base = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32).state_dict()[q]
    assert float((merged[q] - base).abs().max()) > 1e-4  # the adapter is in it


def test_checkpoint_holds_peft_adapter_and_export_merge_round_trip(one_rank, tiny_llama, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from rlkit.learner.lora_checkpoint import export_merged

    _, ckpt = one_rank
    assert (ckpt / "adapter" / "adapter_config.json").is_file()
    peft_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32),
                                           str(ckpt / "adapter")).eval()  # fmt: skip
    out = export_merged(ckpt, tmp_path / "merged")
    merged = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    hf_form = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32).eval()
    ids = torch.tensor([[5, 17, 99, 3, 42, 7, 8, 150]])
    with torch.no_grad():
        want = peft_model(input_ids=ids).logits
        base = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)(input_ids=ids).logits
        torch.testing.assert_close(merged(input_ids=ids).logits, want, rtol=0, atol=1e-5)
        torch.testing.assert_close(hf_form(input_ids=ids).logits, want, rtol=0, atol=1e-5)
    assert float((want - base).abs().max()) > 1e-3  # the trained adapter changes the logits
    assert not any("lora" in k for k in merged.state_dict())


def test_export_merge_refuses_a_full_checkpoint(tmp_path):
    from rlkit.learner.lora_checkpoint import export_merged

    (tmp_path / "dcp").mkdir()
    (tmp_path / "dcp" / ".metadata").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="adapter/adapter_config.json"):
        export_merged(tmp_path, tmp_path / "out")


@pytest.mark.slow
def test_two_ranks_match_one_and_resume_reshards(one_rank, tiny_llama, tmp_path):
    """Two ranks: the same adapter after the same step (gradient checkpointing on); then a two-rank
    learner resumes the one-rank checkpoint with its adapters and their AdamW state."""
    result1, ckpt = one_rank
    result2 = _run(_spec(tiny_llama, 2), 2, tmp_path)
    assert result2["state_names"] == result1["state_names"]
    for name, tensor in result1["adapter"].items():
        torch.testing.assert_close(result2["adapter"][name], tensor, rtol=0, atol=1e-6)
    resumed = _run(_spec(tiny_llama, 2), 2, tmp_path, ckpt=str(ckpt), resume=True, tag="-resume")
    assert resumed["with_optimizer"] is True
    assert resumed["state_names"] == result1["state_names"]
    for name, tensor in result1["adapter"].items():
        torch.testing.assert_close(resumed["adapter"][name], tensor, rtol=0, atol=0)


VLLM_PROBE = """
import json, os, sys
os.environ.update(VLLM_ENABLE_V1_MULTIPROCESSING="0", VLLM_CPU_NUM_OF_RESERVED_CPU="0")
if __name__ == "__main__":
    from vllm import LLM, SamplingParams, TokensPrompt
    llm = LLM(model=sys.argv[1], dtype="float32", kv_cache_memory_bytes=1 << 27, enforce_eager=True)
    out = llm.generate([TokensPrompt(prompt_token_ids=json.loads(sys.argv[2]))],
                       SamplingParams(max_tokens=1, prompt_logprobs=0), use_tqdm=False)[0]
    ids = json.loads(sys.argv[2])
    print("LOGPROBS", json.dumps([step[t].logprob for step, t in zip(out.prompt_logprobs[1:], ids[1:])]))
"""


@pytest.mark.slow
def test_cli_export_merge_loads_in_vllm(one_rank, tmp_path):
    """`rlkit export CKPT --out DIR --merge`: vLLM serves the merged folder with transformers' log-probs;
    without --merge a LoRA checkpoint is refused."""
    import json
    import subprocess
    import sys

    from transformers import AutoModelForCausalLM

    from rlkit.cli import main

    _, ckpt = one_rank
    assert main(["export", str(ckpt), "--out", str(tmp_path / "plain")]) == 2
    assert main(["export", str(ckpt), "--out", str(tmp_path / "merged"), "--merge"]) == 0
    ids = [5, 17, 99, 3, 42, 7, 8, 150]
    script = tmp_path / "probe.py"
    script.write_text(VLLM_PROBE)
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "merged"), json.dumps(ids)],
                          capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    line = next((l for l in proc.stdout.splitlines() if l.startswith("LOGPROBS")), None)
    assert line is not None, proc.stderr[-3000:]
    served = torch.tensor(json.loads(line.split(" ", 1)[1]))
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "merged", dtype=torch.float32)
    with torch.no_grad():
        lp = model(input_ids=torch.tensor([ids])).logits[0, :-1].log_softmax(-1)
    want = lp.gather(-1, torch.tensor(ids[1:])[:, None])[:, 0]
    torch.testing.assert_close(served, want, rtol=0, atol=1e-3)
