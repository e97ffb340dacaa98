"""LoRA in checkpoints: the adapter in PEFT format beside the sharded state, and merged HF exports.

A LoRA run's checkpoint holds what every checkpoint holds (rlkit/checkpoint.py: ``dcp/`` with the
policy's weights, adapters included, and the adapters' AdamW state; config and tokenizer) plus::

    adapter/adapter_config.json         PEFT's config (r, lora_alpha, target_modules, ...)
    adapter/adapter_model.safetensors   the adapter tensors (PeftModel.from_pretrained and vLLM load it)

and, in HF form (``hf``: the final checkpoint), the merged model ``W0 + (alpha / r) B A`` under the
base model's names. ``rlkit export CKPT --out DIR --merge`` writes the same merged folder from ``dcp/``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from rlkit.learner.lora import (
    ADAPTER_CONFIG,
    ADAPTER_DIR,
    gather_adapter,
    merged_buckets,
    merged_layout,
    save_adapter,
)


def save_lora_checkpoint(path: str, worker, *, hf: bool, tokenizer_path: str) -> None:
    """Every rank: the adapter gathered to rank 0, written in PEFT format; with ``hf``, the merged HF
    form streamed one bucket at a time (one safetensors file per bucket). A collective."""
    from rlkit.checkpoint import write_hf_buckets

    model, rank = worker.policy.hf, worker.rank
    tensors = gather_adapter(model, sender=rank == 0)
    if rank == 0:
        save_adapter(Path(path) / ADAPTER_DIR, tensors, worker.spec.model.lora, base_model_path=tokenizer_path)
    if not hf:
        return
    layout = merged_layout(model, dtype="float32", bucket_bytes=1 << 30)
    write_hf_buckets(path, model=model, layout=layout, buckets=merged_buckets(model, layout, sender=rank == 0),
                     rank=rank, tokenizer_path=tokenizer_path)  # fmt: skip


def is_lora_checkpoint(path: str | Path) -> bool:
    return (Path(path) / ADAPTER_DIR / ADAPTER_CONFIG).is_file()


def export_merged(checkpoint: str | Path, out: str | Path) -> Path:
    """`rlkit export CKPT --out DIR --merge`: the checkpoint's base weights with its adapter merged in, as an
    HF folder (transformers and vLLM load it), built in this one process from ``dcp/`` (fp32)."""
    import torch.distributed.checkpoint as dcp
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model
    from torch.distributed.checkpoint.default_planner import DefaultLoadPlanner
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from rlkit.checkpoint import DCP_DIR, is_sharded

    checkpoint, out = Path(checkpoint), Path(out)
    if not is_sharded(checkpoint):
        raise FileNotFoundError(f"{checkpoint}: not a sharded rlkit checkpoint (no {DCP_DIR}/.metadata)")
    if not is_lora_checkpoint(checkpoint):
        raise FileNotFoundError(f"{checkpoint}: --merge needs a LoRA checkpoint ({ADAPTER_DIR}/{ADAPTER_CONFIG} is missing)")
    config = AutoConfig.from_pretrained(checkpoint)
    base = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    base.tie_weights()
    lora = PeftLoraConfig.from_pretrained(str(checkpoint / ADAPTER_DIR))
    peft_model = get_peft_model(base, lora)
    inner = peft_model.base_model.model  # the learner's module: its names are the checkpoint's
    state = {"model": inner.state_dict()}
    dcp.load(state, checkpoint_id=str(checkpoint / DCP_DIR), planner=DefaultLoadPlanner(allow_partial_load=True))
    inner.load_state_dict(state["model"])
    merged = peft_model.merge_and_unload()
    merged.tie_weights()
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(checkpoint).save_pretrained(out)
    return out
