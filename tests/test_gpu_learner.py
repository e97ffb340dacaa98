"""The learner path on CUDA: FSDP2 over NCCL (world size 1), bf16 compute, fp32 master weights.

Skipped without a GPU (CI has none).
"""

from __future__ import annotations

import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_bf16_fsdp_logprobs_track_fp32_and_train(tiny_llama, tmp_path):
    import torch.distributed as dist
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
    from transformers import AutoModelForCausalLM

    from rlkit.batch import build_batch
    from rlkit.learner.policy import CausalLMPolicy

    dist.init_process_group("nccl", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        batch = build_batch(
            prompt_ids=[[5, 6, 7], [8]], response_ids=[[9, 10], [11, 12, 13]],
            rollout_logprobs=[[0.0, 0.0], [0.0, 0.0, 0.0]], group_ids=[0, 0], rewards=[1.0, 0.0],
            advantages=torch.tensor([1.0, -1.0]), pad_token_id=0,
        )
        cuda_batch = type(batch)(**{k: (v.cuda() if isinstance(v, torch.Tensor) else v) for k, v in vars(batch).items()})
        reference = CausalLMPolicy(AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32))
        with torch.no_grad():
            ref_lp, _ = reference(batch, temperature=1.0, chunk_size=4, with_entropy=False)

        policy = CausalLMPolicy(AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)).cuda()
        mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
        for layer in policy.decoder_layers:
            fully_shard(layer, mp_policy=mp)
        fully_shard(policy, mp_policy=mp)
        lp, _ = policy(cuda_batch, temperature=1.0, chunk_size=4, with_entropy=False)
        assert lp.dtype == torch.float32  # softmax runs in fp32 even with bf16 compute
        torch.testing.assert_close(lp.cpu(), ref_lp, rtol=0, atol=0.1)

        optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-3)
        loss = -(lp * cuda_batch.advantages[:, None] * cuda_batch.response_mask).sum()
        loss.backward()
        optimizer.step()
        assert all(p.dtype == torch.float32 for p in policy.parameters())  # master weights stay fp32
        with torch.no_grad():
            after, _ = policy(cuda_batch, temperature=1.0, chunk_size=4, with_entropy=False)
        assert not torch.equal(after, lp.detach())
    finally:
        dist.destroy_process_group()
