"""ASPO: asymmetric importance sampling with soft dual clip.

Positive-advantage tokens use the flipped weight ``1/r``: a low-probability
token the update has not yet raised gets a larger weight. Negative tokens keep
``r``. With ``p = min(r, 1+ε_h)``, ``q = max(r, 1−ε_l)`` and ``u = r/sg(r)``:

- A>0: ``ℓ = −A·(p/sg(p))/sg(p)``; if ``r < 1/c``: ``ℓ = −c·A·u`` (soft dual clip)
- A<0: ``ℓ = −A·q``;               if ``r > c``:   ``ℓ = −c·A·u`` (soft dual clip)

"Soft": the weight is capped at ``c`` instead of being zeroed, so a dual-clipped
token keeps gradient ``−c·A``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rlkit.algorithms.loss_base import (
    TokenLoss,
    check_clip,
    clip_zones,
    exp_where,
    register_policy_loss,
    unit_with_grad,
)

__all__ = ["aspo_loss"]


@register_policy_loss("aspo")
def aspo_loss(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    dual_clip: float | None = 3.0,
) -> TokenLoss:
    """ASPO, arXiv 2510.06062: ``ℓ = −A·(p/sg(p))/sg(p)`` (A>0, p = min(r, 1+ε_h)); ``−A·max(r, 1−ε_l)`` (A<0).

    Regions (value | gradient w.r.t. logprob):
    A>0, r>1+ε_h: ``−A/(1+ε_h)`` | 0;  A>0, 1/c ≤ r ≤ 1+ε_h: ``−A/r`` | ``−A/r``;
    A>0, r<1/c: ``−c·A`` | ``−c·A``;  A<0, r<1−ε_l: ``−(1−ε_l)·A`` | 0;
    A<0, 1−ε_l ≤ r ≤ c: ``−r·A`` | ``−r·A``;  A<0, r>c: ``−c·A`` | ``−c·A``.
    ``dual_clip=None`` removes the soft cap on both sides.
    """
    check_clip(clip_low=clip_low, clip_high=clip_high, dual_clip=dual_clip)
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio.detach())
    unit = unit_with_grad(logprobs)
    positive, negative = advantages > 0, advantages < 0
    low, high = clip_zones(ratio, advantages, clip_low=clip_low, clip_high=clip_high)
    if dual_clip is None:
        soft_pos = soft_neg = torch.zeros_like(positive)
    else:
        soft_pos = positive & (ratio < 1.0 / dual_clip)
        soft_neg = negative & (ratio > dual_clip)
    mid_pos = positive & ~high & ~soft_pos
    mid_neg = negative & ~low & ~soft_neg

    # A>0 between the bounds: value −A/r, gradient −A/r (1/sg(r) is a constant weight).
    inverse = 1.0 / torch.where(mid_pos, ratio, torch.ones_like(ratio))
    values = torch.where(mid_pos, -advantages * unit * inverse, -advantages * exp_where(mid_neg, log_ratio))
    values = torch.where(high, -advantages / (1.0 + clip_high), values)
    values = torch.where(low, -advantages * (1.0 - clip_low), values)
    soft = soft_pos | soft_neg
    if dual_clip is not None:
        values = torch.where(soft, -advantages * dual_clip * unit, values)
    return TokenLoss(values=values, clipped_low=low, clipped_high=high, dual_clipped=soft)
