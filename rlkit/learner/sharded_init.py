"""Build an FSDP2-sharded policy so that no rank holds more than its shard (rank 0: the one full copy, once).

Rank 0 loads the HF weights; every other rank builds the model with its
parameters on the meta device (``accelerate.init_empty_weights``; buffers such as
rotary frequencies are computed for real). After ``fully_shard`` the meta shards
are allocated empty and ``set_model_state_dict(..., broadcast_from_rank0=True)``
fills every rank's shard from rank 0's copy, one tensor at a time
(torch.distributed.checkpoint.state_dict). With one rank the model is simply loaded.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, fully_shard

from rlkit.learner.policy import CausalLMPolicy, load_hf_model


def _empty_hf_model(path: str, *, dtype: torch.dtype, attn_implementation: str):
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(path)
    with init_empty_weights(include_buffers=False):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation=attn_implementation)
    model.tie_weights()  # from_config on meta leaves a tied output projection untied (one parameter too many)
    model.config.use_cache = False
    return model


def build_sharded_policy(
    path: str, *, rank: int, world_size: int, device: torch.device, param_dtype: torch.dtype,
    compute_dtype: torch.dtype, gradient_checkpointing: bool, attn_implementation: str, cpu_offload: bool = False,
    lora=None,
) -> CausalLMPolicy:  # fmt: skip
    """The policy sharded over ``world_size`` ranks, parameters kept in ``param_dtype`` (fp32 master
    weights for the trained policy; the compute dtype for the frozen KL reference). ``lora`` (a
    :class:`rlkit.config.LoraConfig`): PEFT adapters injected before sharding (rlkit/learner/lora.py)."""
    full = None
    if rank == 0 or world_size == 1:
        hf = load_hf_model(path, dtype=param_dtype, gradient_checkpointing=gradient_checkpointing,
                           attn_implementation=attn_implementation)  # fmt: skip
        if lora is not None:
            from rlkit.learner.lora import apply_lora

            apply_lora(hf, lora, gradient_checkpointing=gradient_checkpointing)
        policy = CausalLMPolicy(hf).to(device)
        if world_size > 1:
            full = {k: v.detach() for k, v in policy.hf.state_dict().items()}
    else:
        hf = _empty_hf_model(path, dtype=param_dtype, attn_implementation=attn_implementation)
        if gradient_checkpointing:
            hf.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if lora is not None:
            from rlkit.learner.lora import apply_lora

            apply_lora(hf, lora, gradient_checkpointing=gradient_checkpointing)
        policy = CausalLMPolicy(hf)
        policy._apply(lambda t: t.to(device) if not t.is_meta else t)  # buffers onto the device; params stay meta
    mp = MixedPrecisionPolicy(param_dtype=compute_dtype, reduce_dtype=torch.float32)
    offload = {"offload_policy": CPUOffloadPolicy()} if cpu_offload and device.type == "cuda" else {}
    # With one rank a "shard" is the whole tensor: resharding after forward would
    # only re-gather the same weights for backward.
    reshard = world_size > 1
    for layer in policy.decoder_layers:
        fully_shard(layer, mp_policy=mp, reshard_after_forward=reshard, **offload)
    fully_shard(policy, mp_policy=mp, reshard_after_forward=reshard, **offload)
    if world_size > 1:
        _fill_from_rank0(policy, full, device=device if not offload else torch.device("cpu"))
    return policy


def _fill_from_rank0(policy: CausalLMPolicy, full: dict[str, torch.Tensor] | None, *, device: torch.device) -> None:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    # Meta shards get storage (uninitialised), then every rank's shard is filled from rank 0.
    policy._apply(lambda t: torch.empty_like(t, device=device) if t.is_meta else t)
    set_model_state_dict(
        policy.hf, full if full is not None else {},
        options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True, strict=True),
    )
    dist.barrier()
