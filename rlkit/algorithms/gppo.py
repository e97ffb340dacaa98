"""Gradient-preserving clipping: ``gppo`` and ``ce_gppo``.

A clipped token keeps the forward value of the PPO clip but, instead of a zero
gradient, the gradient it had at the clip boundary: the bound is written as
``(1±ε)·r/sg(r)``, whose value is ``1±ε`` and whose derivative w.r.t. the
logprob is ``1±ε``. CE-GPPO scales the two clipped sides by β1 (low) and β2
(high); β1 = β2 = 1 is exactly GPPO. Dual-clipped tokens (A<0, r>c) carry the
constant ``−c·A`` with zero gradient, as in ``ppo_clip``.
"""

from __future__ import annotations

from torch import Tensor

from rlkit.algorithms.loss_base import TokenLoss, register_policy_loss
from rlkit.algorithms.ppo import clipped_surrogate
from rlkit.algorithms.registry import ParameterError

__all__ = ["ce_gppo_loss", "gppo_loss", "gradient_preserving_clip"]


def gradient_preserving_clip(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    *,
    clip_low: float,
    clip_high: float,
    dual_clip: float | None,
    beta_low: float,
    beta_high: float,
) -> TokenLoss:
    """Region by region (``u = r/sg(r)``: value 1, derivative 1):

    - A>0, r>1+ε_h: ``ℓ = −β_high·(1+ε_h)·u·A``
    - A<0, r<1−ε_l: ``ℓ = −β_low·(1−ε_l)·u·A``
    - A<0, r>c:     ``ℓ = −c·A`` (constant)
    - otherwise:    ``ℓ = −r·A``
    """
    return clipped_surrogate(
        logprobs, old_logprobs, advantages, clip_low=clip_low, clip_high=clip_high, dual_clip=dual_clip,
        keep_boundary_grad=True, beta_low=beta_low, beta_high=beta_high,
    )


@register_policy_loss("gppo")
def gppo_loss(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.28,
    dual_clip: float | None = None,
) -> TokenLoss:
    """GPPO, Klear-Reasoner arXiv 2508.07629: ``ℓ = max(−A·r, −A·clip(r, (1−ε_l)·r/sg(r), (1+ε_h)·r/sg(r)))``.

    Same value as ``dapo``; on clipped tokens the gradient is ``−(1+ε_h)·A``
    (A>0, r>1+ε_h) or ``−(1−ε_l)·A`` (A<0, r<1−ε_l) instead of 0.
    """
    return gradient_preserving_clip(
        logprobs,
        old_logprobs,
        advantages,
        clip_low=clip_low,
        clip_high=clip_high,
        dual_clip=dual_clip,
        beta_low=1.0,
        beta_high=1.0,
    )


@register_policy_loss("ce_gppo")
def ce_gppo_loss(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    dual_clip: float | None = None,
    beta1: float = 0.75,
    beta2: float = 1.0,
) -> TokenLoss:
    """CE-GPPO, arXiv 2509.20712: ``ℓ = −β1·(1−ε_l)·u·A`` (A<0, r<1−ε_l); ``−β2·(1+ε_h)·u·A`` (A>0, r>1+ε_h).

    Elsewhere as GPPO: ``−r·A``, and ``−c·A`` (constant) for A<0, r>c.

    ``u = r/sg(r)`` (value 1, gradient 1). β1 scales the push-down of low-probability negative tokens (lowers entropy),
    β2 the push-up of low-probability positive tokens (raises entropy).
    """
    for name, beta in (("beta1", beta1), ("beta2", beta2)):
        if beta < 0.0:
            raise ParameterError(name, f"must be >= 0, got {beta!r}")
    return gradient_preserving_clip(
        logprobs,
        old_logprobs,
        advantages,
        clip_low=clip_low,
        clip_high=clip_high,
        dual_clip=dual_clip,
        beta_low=beta1,
        beta_high=beta2,
    )
