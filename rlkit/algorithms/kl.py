"""Per-token KL estimators against a frozen reference policy.

Schulman, "Approximating KL Divergence" (2020), with ``x = ref_logprob − logprob``
(samples drawn from the current policy):

- ``k1``: ``−x``             gradient w.r.t. logprob ``1``
- ``k2``: ``x²/2``           gradient ``−x``
- ``k3``: ``eˣ − x − 1``     gradient ``1 − eˣ`` (non-negative, low variance)

No clamping. As a loss term: ``kl_coef · aggregate(kl_penalty(...), mask, loss_agg=...)``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["KL_ESTIMATORS", "kl_penalty"]


def _k1(x: Tensor) -> Tensor:
    return -x


def _k2(x: Tensor) -> Tensor:
    return 0.5 * x * x


def _k3(x: Tensor) -> Tensor:
    return torch.expm1(x) - x


KL_ESTIMATORS: dict[str, Callable[[Tensor], Tensor]] = {"k1": _k1, "k2": _k2, "k3": _k3}


def kl_penalty(logprobs: Tensor, ref_logprobs: Tensor, kind: str = "k3", *, mask: Tensor | None = None) -> Tensor:
    """Per-token KL estimate [B, T] of kind ``"k1" | "k2" | "k3"``, differentiable w.r.t. ``logprobs``.

    ``ref_logprobs`` is a constant. With ``mask`` given, padded positions are 0
    and their inputs are never evaluated, so any garbage there (even values
    whose exponential overflows) leaves the valid gradients finite.
    """
    try:
        estimator = KL_ESTIMATORS[kind]
    except (KeyError, TypeError):
        raise ValueError(f"unknown KL kind {kind!r}; known: {', '.join(KL_ESTIMATORS)}") from None
    if ref_logprobs.shape != logprobs.shape:
        raise ValueError(f"ref_logprobs shape {tuple(ref_logprobs.shape)} != logprobs shape {tuple(logprobs.shape)}")
    x = ref_logprobs.detach().to(logprobs.dtype) - logprobs
    if mask is None:
        return estimator(x)
    if mask.shape != logprobs.shape:
        raise ValueError(f"mask shape {tuple(mask.shape)} != logprobs shape {tuple(logprobs.shape)}")
    valid = mask if mask.dtype == torch.bool else mask != 0
    return estimator(torch.where(valid, x, torch.zeros_like(x)))
