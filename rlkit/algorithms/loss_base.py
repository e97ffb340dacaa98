"""What a registered policy loss is: the registry, its return type, shared checks.

A policy loss is a per-token function. ``compute_policy_loss`` prepares clean
[B, T] inputs (padding replaced, constants detached), calls it, then applies
ERC, aggregation and metrics, so a loss only writes its equation::

    @register_policy_loss("my_loss")
    def my_loss(logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor, *,
                clip: float = 0.2) -> TokenLoss:
        ratio = torch.exp(logprobs - old_logprobs)
        return TokenLoss(values=-advantages * ratio)

All three inputs are [B, T] in the same dtype; ``old_logprobs`` and
``advantages`` are detached; padded positions hold 0 (so ratio 1, advantage 0).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from rlkit.algorithms.registry import ParameterError, Registry

__all__ = [
    "POLICY_LOSSES",
    "PolicyLossFn",
    "TokenLoss",
    "check_clip",
    "clip_zones",
    "dual_zone",
    "exp_where",
    "register_policy_loss",
    "unit_with_grad",
]


@dataclass(frozen=True)
class TokenLoss:
    """Per-token output of a policy loss.

    Attributes:
        values: [B, T] per-token loss ``ℓ`` (to minimise), differentiable w.r.t. logprobs.
        clipped_low: [B, T] bool, tokens in the low clip zone (A<0 and r<1−ε_l); None = none.
        clipped_high: [B, T] bool, tokens in the high clip zone (A>0 and r>1+ε_h); None = none.
        dual_clipped: [B, T] bool, tokens capped by a dual clip; None = none.
    """

    values: Tensor
    clipped_low: Tensor | None = None
    clipped_high: Tensor | None = None
    dual_clipped: Tensor | None = None


PolicyLossFn = Callable[..., TokenLoss]

POLICY_LOSSES: Registry[PolicyLossFn] = Registry(
    "loss",
    positional=("logprobs", "old_logprobs", "advantages"),
    reserved=frozenset({"loss_agg", "entropy", "old_entropy", "erc", "norm_len", "mask"}),
)


def register_policy_loss(name: str) -> Callable[[PolicyLossFn], PolicyLossFn]:
    """Register ``fn(logprobs, old_logprobs, advantages, *, <typed params with defaults>) -> TokenLoss``.

    A taken name raises ``ValueError``; ``*args``/``**kwargs``, positional
    extras or params without defaults raise ``TypeError`` at registration.
    ``validate_loss_params`` calls the function once on a one-token input, so
    value checks in its body (raise :class:`ParameterError`) fire at config load.
    """
    return POLICY_LOSSES.register(name)


def exp_where(keep: Tensor, log_ratio: Tensor) -> Tensor:
    """``exp(log_ratio)`` where ``keep``, exactly 1 elsewhere.

    Positions outside ``keep`` get a zero gradient even where ``exp`` would
    overflow, so a region that ``torch.where`` discards cannot turn into
    ``0 · inf = NaN`` in the backward pass.
    """
    return torch.exp(torch.where(keep, log_ratio, torch.zeros_like(log_ratio)))


def unit_with_grad(logprobs: Tensor) -> Tensor:
    """``exp(lp − sg(lp))``: value exactly 1, derivative 1 w.r.t. ``lp`` (the ``r/sg(r)`` factor)."""
    return torch.exp(logprobs - logprobs.detach())


def check_clip(*, clip_low: float, clip_high: float, dual_clip: float | None) -> None:
    """Require 0 <= clip_low < 1, clip_high >= 0 and dual_clip None or > 1."""
    if not 0.0 <= clip_low < 1.0:
        raise ParameterError("clip_low", f"must be in [0, 1), got {clip_low!r}")
    if clip_high < 0.0:
        raise ParameterError("clip_high", f"must be >= 0, got {clip_high!r}")
    if dual_clip is not None and not dual_clip > 1.0:
        raise ParameterError("dual_clip", f"must be > 1 (or None to disable), got {dual_clip!r}")


def clip_zones(ratio: Tensor, advantages: Tensor, *, clip_low: float, clip_high: float) -> tuple[Tensor, Tensor]:
    """Trust-region clip zone Z, split as (low, high).

    low: ``A<0 and r<1−ε_l``; high: ``A>0 and r>1+ε_h``.
    """
    low = (advantages < 0) & (ratio < 1.0 - clip_low)
    high = (advantages > 0) & (ratio > 1.0 + clip_high)
    return low, high


def dual_zone(ratio: Tensor, advantages: Tensor, *, dual_clip: float | None) -> Tensor:
    """Tokens with ``A<0 and r>c`` (all False when ``dual_clip`` is None)."""
    if dual_clip is None:
        return torch.zeros_like(ratio, dtype=torch.bool)
    return (advantages < 0) & (ratio > dual_clip)
