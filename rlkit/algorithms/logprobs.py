"""Chunked token log-probs and entropies from final hidden states.

For ``z = (hidden @ weight.T) / temperature`` and ``p = softmax(z)``:
``logprob_n = log p_n[target_n]`` and ``H_n = −Σ_v p_nv · log p_nv``.

The vocabulary projection is done ``chunk_size`` tokens at a time, so the float32
[N, V] logits never exist at once; each chunk runs under activation
checkpointing, so the backward pass recomputes one chunk's logits at a time
instead of keeping every chunk's alive. This is what learners use for the
current and old policy's logprobs, and for the entropies ERC needs.

With ``top_p < 1`` or ``top_k > 0`` the distribution is the one vLLM samples from and
reports (``processed_logprobs``): the logits outside the top-k, then outside the
smallest top-p nucleus, are set to −inf before the softmax, exactly as vLLM's
``apply_top_k_top_p`` does (sort ascending; drop sorted positions whose cumulative
probability is ≤ 1 − p; the most likely token always stays). The sampled token is
always kept, so a rounding difference at the nucleus boundary can never give it
probability 0. The mask is a constant; gradients reach the kept logits only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.checkpoint import checkpoint

__all__ = ["token_logprobs_from_hidden", "truncation_mask"]


@torch.no_grad()
def truncation_mask(logits: Tensor, *, top_k: int = -1, top_p: float = 1.0, keep: Tensor | None = None) -> Tensor:
    """Bool [N, V]: True where vLLM's top-k / top-p sampling drops the token (``keep`` [N] ids stay)."""
    logits_sort, index = logits.sort(dim=-1, descending=False)
    drop_sort = torch.zeros_like(logits_sort, dtype=torch.bool)
    if 0 < top_k < logits.shape[-1]:
        threshold = logits_sort[:, logits.shape[-1] - top_k].unsqueeze(-1)
        drop_sort = logits_sort < threshold
        logits_sort = logits_sort.masked_fill(drop_sort, -float("inf"))
    if top_p < 1.0:
        cumulative = logits_sort.softmax(dim=-1).cumsum(dim=-1)
        drop_p = cumulative <= 1 - top_p
        drop_p[:, -1] = False  # at least one token
        drop_sort = drop_sort | drop_p
    drop = torch.empty_like(drop_sort).scatter_(-1, index, drop_sort)
    if keep is not None:
        drop.scatter_(-1, keep.unsqueeze(-1), False)
    return drop


def _chunk(
    hidden: Tensor, weight: Tensor, targets: Tensor, temperature: float, dtype: torch.dtype, with_entropy: bool,
    top_k: int = -1, top_p: float = 1.0,
):  # fmt: skip
    logits = (hidden @ weight.T).to(dtype) / temperature
    truncated = top_k > 0 or top_p < 1.0
    if truncated:
        logits = logits.masked_fill(truncation_mask(logits, top_k=top_k, top_p=top_p, keep=targets), -float("inf"))
    logp = F.log_softmax(logits, dim=-1)
    token = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    if not with_entropy:
        return (token,)
    if truncated:  # dropped tokens: p = 0 contributes 0 (not 0 · −inf)
        logp = logp.masked_fill(torch.isinf(logp), 0.0)
    return token, -(logp.exp() * logp).sum(dim=-1)


def token_logprobs_from_hidden(
    hidden: Tensor,
    weight: Tensor,
    targets: Tensor,
    *,
    temperature: float = 1.0,
    chunk_size: int = 1024,
    with_entropy: bool = False,
    top_p: float = 1.0,
    top_k: int = -1,
) -> tuple[Tensor, Tensor | None]:
    """Log-prob of each target token and, optionally, the full-vocabulary entropy.

    Args:
        hidden: [N, H] final hidden states (e.g. the valid positions of a batch, flattened).
        weight: [V, H] output projection (``lm_head.weight``).
        targets: [N] token ids whose log-probs are wanted.
        temperature: logits are divided by it (use the sampling temperature).
        chunk_size: tokens per chunk; peak extra memory is about ``chunk_size · V`` floats.
        with_entropy: also return the entropy of ``softmax(z)`` per token.
        top_p, top_k: the sampling truncation (module docstring); 1.0 and -1 (or 0) = off.

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
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
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
            top_k,
            top_p,
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
