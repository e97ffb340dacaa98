"""Clipped surrogate losses: ``ppo_clip`` and ``dapo``.

Per token, ``r = exp(lp − old_lp)``:
``ℓ = max(−A·r, −A·clip(r, 1−ε_l, 1+ε_h))``; with dual clip c, for A<0: ``ℓ = min(ℓ, −c·A)``.
Clipped and dual-clipped tokens carry a constant (zero gradient).
"""

from __future__ import annotations

import torch
from torch import Tensor

from rlkit.algorithms.loss_base import (
    TokenLoss,
    check_clip,
    clip_zones,
    dual_zone,
    exp_where,
    register_policy_loss,
    unit_with_grad,
)

__all__ = ["clipped_surrogate", "dapo_loss", "ppo_clip_loss"]


def clipped_surrogate(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    *,
    clip_low: float,
    clip_high: float,
    dual_clip: float | None,
    keep_boundary_grad: bool = False,
    beta_low: float = 1.0,
    beta_high: float = 1.0,
) -> TokenLoss:
    """PPO clipped surrogate with optional dual clip, written region by region.

    ``max(−A·r, −A·clip(r, 1−ε_l, 1+ε_h))`` equals ``−A·r`` outside the clip zone
    Z and the constant ``−A·(1±ε)`` inside it; dual clip replaces ``ℓ`` by the
    constant ``−c·A`` where ``A<0 and r>c``. ``keep_boundary_grad`` writes the
    clipped value as ``−A·(1±ε)·r/sg(r)`` (GPPO: same value, the boundary's
    gradient), and ``beta_low``/``beta_high`` scale the two clipped sides (CE-GPPO).
    """
    check_clip(clip_low=clip_low, clip_high=clip_high, dual_clip=dual_clip)
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio.detach())
    low, high = clip_zones(ratio, advantages, clip_low=clip_low, clip_high=clip_high)
    dual = dual_zone(ratio, advantages, dual_clip=dual_clip)
    free = ~(low | high | dual) & (advantages != 0)
    values = -advantages * exp_where(free, log_ratio)
    boundary = unit_with_grad(logprobs) if keep_boundary_grad else 1.0
    values = torch.where(high, -advantages * (beta_high * (1.0 + clip_high)) * boundary, values)
    values = torch.where(low, -advantages * (beta_low * (1.0 - clip_low)) * boundary, values)
    if dual_clip is not None:
        values = torch.where(dual, -advantages * dual_clip, values)
    return TokenLoss(values=values, clipped_low=low, clipped_high=high, dual_clipped=dual)


@register_policy_loss("ppo_clip")
def ppo_clip_loss(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    dual_clip: float | None = None,
) -> TokenLoss:
    """PPO clip, arXiv 1707.06347 eq. 7: ``ℓ = max(−A·r, −A·clip(r, 1−ε_l, 1+ε_h))``.

    Dual clip (Ye et al., arXiv 1912.09729): for A<0, ``ℓ = min(ℓ, −c·A)``.
    Gradient ``−r·A`` outside the clip zone, 0 inside it and in the dual zone.
    """
    return clipped_surrogate(
        logprobs, old_logprobs, advantages, clip_low=clip_low, clip_high=clip_high, dual_clip=dual_clip
    )


@register_policy_loss("dapo")
def dapo_loss(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.28,
    dual_clip: float | None = None,
) -> TokenLoss:
    """DAPO clip-higher (decoupled clip), arXiv 2503.14476: ``ℓ = max(−A·r, −A·clip(r, 1−ε_l, 1+ε_h))``, ε_h = 0.28.

    The same function as ``ppo_clip`` with DAPO's decoupled upper bound as default;
    DAPO's token-level aggregation is ``loss_agg="token-mean"`` (the default).
    """
    return clipped_surrogate(
        logprobs, old_logprobs, advantages, clip_low=clip_low, clip_high=clip_high, dual_clip=dual_clip
    )
