"""Chunked token log-probs and entropies from final hidden states.

For ``z = (hidden @ weight.T) / temperature`` and ``p = softmax(z)``:
``logprob_n = log p_n[target_n]`` and ``H_n = −Σ_v p_nv · log p_nv``.

The vocabulary projection is done ``chunk_size`` tokens at a time, so the float32
[N, V] logits never exist at once; each chunk runs under activation
checkpointing, so the backward pass recomputes one chunk's logits at a time
instead of keeping every chunk's alive. This is what learners use for the
current and old policy's logprobs, and for the entropies ERC needs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.checkpoint import checkpoint

__all__ = ["token_logprobs_from_hidden"]


def _chunk(hidden: Tensor, weight: Tensor, targets: Tensor, temperature: float, dtype: torch.dtype, with_entropy: bool):
    logits = (hidden @ weight.T).to(dtype) / temperature
    logp = F.log_softmax(logits, dim=-1)
    token = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    if not with_entropy:
        return (token,)
    return token, -(logp.exp() * logp).sum(dim=-1)


def token_logprobs_from_hidden(
    hidden: Tensor,
    weight: Tensor,
    targets: Tensor,
    *,
    temperature: float = 1.0,
    chunk_size: int = 1024,
    with_entropy: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """Log-prob of each target token and, optionally, the full-vocabulary entropy.

    Args:
        hidden: [N, H] final hidden states (e.g. the valid positions of a batch, flattened).
        weight: [V, H] output projection (``lm_head.weight``).
        targets: [N] token ids whose log-probs are wanted.
        temperature: logits are divided by it (use the sampling temperature).
        chunk_size: tokens per chunk; peak extra memory is about ``chunk_size · V`` floats.
        with_entropy: also return the entropy of ``softmax(z)`` per token.

    Returns:
        ``(logprobs [N], entropy [N] or None)``, differentiable w.r.t. ``hidden``
        and ``weight``. The matmul runs in the inputs' dtype; the softmax in at
        least float32 (float64 inputs stay float64).
    """
    if hidden.dim() != 2 or weight.dim() != 2 or hidden.shape[1] != weight.shape[1]:
        raise ValueError(f"need hidden [N, H] and weight [V, H], got {tuple(hidden.shape)} and {tuple(weight.shape)}")
    if targets.shape != hidden.shape[:1] or targets.dtype != torch.long:
        raise ValueError(
            f"targets must be a long tensor [{hidden.shape[0]}], got {targets.dtype} {tuple(targets.shape)}"
        )
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    dtype = torch.promote_types(torch.promote_types(hidden.dtype, weight.dtype), torch.float32)
    track = torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad)
    pieces: list[tuple[Tensor, ...]] = []
    for start in range(0, hidden.shape[0], chunk_size):
        args = (
            hidden[start : start + chunk_size],
            weight,
            targets[start : start + chunk_size],
            temperature,
            dtype,
            with_entropy,
        )
        pieces.append(checkpoint(_chunk, *args, use_reentrant=False) if track else _chunk(*args))
    if not pieces:
        empty = hidden.new_zeros(0, dtype=dtype)
        if track:
            # No token, yet still on the graph of hidden and weight (zero gradient): a data-parallel
            # rank whose share is only padding must run the same backward (FSDP collectives) as the rest.
            empty = empty + (hidden.sum() + weight.sum()).to(dtype) * 0
        return empty, (empty.clone() if with_entropy else None)
    logprobs = torch.cat([p[0] for p in pieces])
    entropy = torch.cat([p[1] for p in pieces]) if with_entropy else None
    return logprobs, entropy
