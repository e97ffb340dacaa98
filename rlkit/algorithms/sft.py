"""Klear's SFT term on correct samples.

Klear-Reasoner, arXiv 2508.07629: ``L = L_policy + α·L_sft`` with
``L_sft = agg(−logprob)`` over the tokens of the selected responses (those whose
reward equals the correct score), using the policy loss's ``loss_agg``
restricted to those rows. Klear-Reasoner and CE-GPPO use α = 0.1.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rlkit.algorithms.aggregation import aggregate

__all__ = ["sft_loss"]


def sft_loss(
    logprobs: Tensor, mask: Tensor, *, select: Tensor, loss_agg: str = "token-mean", norm_len: int | None = None
) -> Tensor:
    """``agg(−logprob)`` over the valid tokens of the rows where ``select`` [B] is True.

    Args:
        logprobs: [B, T] log-probs of the response tokens (differentiable).
        mask: [B, T] bool or 0/1 valid-token mask.
        select: [B] bool, rows that enter the SFT term (e.g. ``rewards == 1``).
        loss_agg, norm_len: as in ``compute_policy_loss``; only selected rows
            count in the denominators.

    Returns 0 (still differentiable) when no row is selected.
    """
    if logprobs.dim() != 2 or mask.shape != logprobs.shape:
        raise ValueError(f"logprobs and mask must both be [B, T]; got {tuple(logprobs.shape)} and {tuple(mask.shape)}")
    if select.shape != logprobs.shape[:1] or select.dtype != torch.bool:
        raise ValueError(
            f"select must be a bool tensor of shape [{logprobs.shape[0]}], got {select.dtype} {tuple(select.shape)}"
        )
    valid = (mask if mask.dtype == torch.bool else mask != 0) & select.unsqueeze(1)
    nll = -torch.where(valid, logprobs, torch.zeros_like(logprobs))
    return aggregate(nll, valid, loss_agg=loss_agg, norm_len=norm_len)
