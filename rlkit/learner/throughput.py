"""Model FLOPs of a training micro-batch and the device peaks that MFU is measured against.

Training FLOPs per sequence of ``s`` tokens (Chinchilla appendix F / PaLM appendix B,
arXiv 2204.02311): ``6 N s`` for the weight matmuls (forward 2, backward 4 per
parameter and token; ``N`` counts the output projection and not the input
embedding lookup) plus ``6 L d s^2`` for causal attention scores and values
(``12 L d s^2`` without the causal half), ``L`` layers of attention width ``d``.
Only real tokens count: padding is not useful work, so packing raises MFU.
"""

from __future__ import annotations

import torch

# Dense peak FLOP/s by device-name fragment (vendor datasheets, no sparsity), per compute dtype.
PEAK_FLOPS: dict[str, dict[str, float]] = {
    "H200": {"bfloat16": 989.4e12, "float16": 989.4e12, "float32": 66.9e12},
    "H100": {"bfloat16": 989.4e12, "float16": 989.4e12, "float32": 66.9e12},
    "A100": {"bfloat16": 312e12, "float16": 312e12, "float32": 19.5e12},
    "L40S": {"bfloat16": 362.05e12, "float16": 362.05e12, "float32": 91.6e12},
    "L4": {"bfloat16": 121e12, "float16": 121e12, "float32": 30.3e12},
}


def device_peak_flops(name: str, dtype: str) -> float | None:
    """The peak of the first table entry whose key occurs in ``name`` (e.g. "NVIDIA H200"), or None."""
    for key, peaks in PEAK_FLOPS.items():
        if key in name:
            return peaks.get(dtype)
    return None


def matmul_params(model: torch.nn.Module) -> int:
    """``N``: parameters that enter a matmul per token (all but an untied input embedding)."""
    total = sum(p.numel() for p in model.parameters())
    embed = model.get_input_embeddings().weight
    tied = embed is model.get_output_embeddings().weight
    return total if tied else total - embed.numel()


def training_flops(config, *, params: int, lengths: list[int]) -> float:
    """Forward + backward FLOPs of sequences with ``lengths`` tokens (formula in the module docstring)."""
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    width = heads * head_dim
    return float(sum(6 * params * s + 6 * config.num_hidden_layers * width * s * s for s in lengths))
