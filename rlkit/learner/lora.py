"""LoRA adapters through PEFT on the learner: wrapping, adapter tensors out, merged weights out.

LoRA (Hu et al. 2021, arXiv:2106.09685, eq. 3): ``h = W0 x + (alpha / r) B A x`` with ``W0`` frozen,
``A`` (r x in) random and ``B`` (out x r) zero at start, so step 0's policy is the base model.

The HF model is wrapped with PEFT's ``get_peft_model`` before FSDP2 ``fully_shard``: the LoRA layers are
injected into the HF module in place, so the policy keeps holding that module (``policy.hf``, whose
parameter names gain ``.base_layer.`` and ``.lora_A.default.`` / ``.lora_B.default.``) and only the
adapter parameters require grad. Names leave this module in two forms:

- PEFT format (``base_model.model.<module>.lora_A.weight``): what ``adapter_model.safetensors`` holds and
  what vLLM's LoRA loader parses;
- base-model names (``<module>.weight``) for merged weights ``W0 + (alpha / r) B A``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from rlkit.config import LoraConfig

ADAPTER = "default"  # PEFT's adapter name inside the learner
PEFT_PREFIX = "base_model.model."
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_DIR = "adapter"  # a checkpoint's PEFT folder
_ADAPTER_KEY = re.compile(rf"\.(lora_[AB])\.{ADAPTER}\.")


def peft_config(cfg: LoraConfig):
    """PEFT's ``LoraConfig`` for ``model.lora`` (causal LM, no bias: vLLM serves no adapter bias)."""
    from peft import LoraConfig as PeftLoraConfig

    return PeftLoraConfig(
        r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, bias="none", task_type="CAUSAL_LM",
        target_modules=cfg.target_modules, exclude_modules=cfg.exclude_modules or None,
    )  # fmt: skip


def apply_lora(hf: nn.Module, cfg: LoraConfig, *, gradient_checkpointing: bool) -> nn.Module:
    """Inject LoRA adapters into ``hf`` in place (PEFT ``get_peft_model``) and return ``hf``: only
    adapter parameters require grad. With gradient checkpointing, the embedding output requires grad
    (``enable_input_require_grads``) so checkpointed blocks see an input that needs a gradient."""
    from peft import get_peft_model

    try:
        peft_model = get_peft_model(hf, peft_config(cfg))
    except ValueError as err:
        raise ValueError(f"model.lora: PEFT cannot place adapters on this model: {err}") from None
    inner = peft_model.base_model.model
    assert inner is hf, "PEFT wrapped a copy of the model"
    if gradient_checkpointing:
        hf.enable_input_require_grads()
    return hf


def is_adapter_param(name: str) -> bool:
    return _ADAPTER_KEY.search(name) is not None


def peft_name(name: str) -> str:
    """``model.layers.0.q_proj.lora_A.default.weight`` -> ``base_model.model.model.layers.0.q_proj.lora_A.weight``."""
    return PEFT_PREFIX + _ADAPTER_KEY.sub(r".\1.", name)


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


@torch.no_grad()
def gather_adapter(hf: nn.Module, *, sender: bool) -> dict[str, torch.Tensor] | None:
    """The adapter's full tensors (PEFT names, fp32, CPU) on the sender, None elsewhere. Every rank must
    call it (``full_tensor()`` of each FSDP2 shard is a collective). Each tensor is a fresh copy, never a
    view into a parameter or a reused buffer: the next optimizer step cannot change what was sent."""
    out: dict[str, torch.Tensor] = {}
    for name, param in hf.named_parameters():
        if not is_adapter_param(name):
            continue
        full = param.detach().full_tensor() if hasattr(param, "full_tensor") else param.detach()
        if sender:
            out[peft_name(name)] = full.to(device="cpu", dtype=torch.float32, copy=True).contiguous()
        del full
    return out if sender else None


def adapter_nbytes(hf: nn.Module) -> int:
    """Bytes of the adapter in fp32 (what an adapter sync sends)."""
    return sum(p.numel() * 4 for name, p in hf.named_parameters() if is_adapter_param(name))


def adapter_config_dict(cfg: LoraConfig, base_model_path: str | None = None) -> dict:
    """``adapter_config.json``'s content (PEFT's own serialization)."""
    config = peft_config(cfg)
    config.base_model_name_or_path = base_model_path
    data = config.to_dict()
    return json.loads(json.dumps(data, default=lambda v: sorted(v) if isinstance(v, set) else str(v)))


def save_adapter(path: str | Path, tensors: dict[str, torch.Tensor], cfg: LoraConfig, *, base_model_path: str | None) -> Path:
    """A PEFT adapter folder (``adapter_config.json`` + ``adapter_model.safetensors``) that
    ``PeftModel.from_pretrained`` and vLLM's ``LoRARequest`` load."""
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / ADAPTER_CONFIG).write_text(json.dumps(adapter_config_dict(cfg, base_model_path), indent=2))
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path / ADAPTER_WEIGHTS), metadata={"format": "pt"})
    return path


# ------------------------------------------------------------------ merged weights (lora.sync: merged)


def _lora_modules(hf: nn.Module) -> dict[str, nn.Module]:
    from peft.tuners.lora import LoraLayer

    return {name: m for name, m in hf.named_modules() if isinstance(m, LoraLayer) and ADAPTER in m.lora_A}


def merged_names(hf: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    """(base-model name, shape) of every weight the engines load, in ``named_parameters`` order (a tied
    output projection once, as the embedding); adapter tensors are folded into their base weight."""
    out = []
    for name, param in hf.named_parameters():
        if is_adapter_param(name):
            continue
        out.append((name.replace(".base_layer.", "."), tuple(param.shape)))
    return out


def merged_layout(hf: nn.Module, *, dtype: str, bucket_bytes: int):
    from rlkit.rollout.transport.base import plan_layout

    return plan_layout(merged_names(hf), dtype=dtype, bucket_bytes=bucket_bytes)


def _full(param: torch.Tensor) -> torch.Tensor:
    param = param.detach()
    return param.full_tensor() if hasattr(param, "full_tensor") else param


@torch.no_grad()
def merged_tensors(hf: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """(base name, full weight) one at a time, adapters merged: ``W0 + scaling * B @ A`` (computed in
    fp32 beside the master weights, which are never modified: no merge/unmerge rounding drift). Every
    rank must iterate it to the end (collectives)."""
    modules = _lora_modules(hf)
    params = dict(hf.named_parameters())
    for name, _ in merged_names(hf):
        module_name = name.rsplit(".", 1)[0]
        module = modules.get(module_name)
        if module is None or not name.endswith(".weight"):
            yield name, _full(params[name])
            continue
        base = _full(module.base_layer.weight)
        a, b = _full(module.lora_A[ADAPTER].weight), _full(module.lora_B[ADAPTER].weight)
        delta = (b.float() @ a.float()) * module.scaling[ADAPTER]
        if getattr(module, "fan_in_fan_out", False):
            delta = delta.T
        yield name, (base.float() + delta).to(base.dtype)


@torch.no_grad()
def merged_buckets(hf: nn.Module, layout, *, sender: bool, device: torch.device | None = None):
    """Like :func:`rlkit.rollout.transport.stream.gathered_buckets`, with merged weights under base names."""
    buffer = torch.empty(layout.largest_bucket, dtype=torch.uint8, device=device) if sender else None
    tensors = merged_tensors(hf)
    for index, bucket in enumerate(layout.buckets):
        for entry in bucket.entries:
            name, full = next(tensors)
            assert name == entry.name, f"merged weights out of layout order: {name} != {entry.name}"
            if sender:
                target = buffer[entry.offset : entry.offset + entry.nbytes].view(getattr(torch, entry.dtype))
                target.view(entry.shape).copy_(full)
            del full
        yield index, (buffer[: bucket.nbytes] if sender else None)
