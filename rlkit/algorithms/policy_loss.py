"""``compute_policy_loss``: one entry point for every registered policy loss.

It checks names and shapes, replaces padded positions by neutral values (so any
finite garbage there changes nothing, gradients included), detaches the
constants, calls the registered per-token loss, applies ERC, aggregates
and returns metrics as python floats.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

# The loss modules register themselves on import.
from rlkit.algorithms import aspo, gppo, ppo  # noqa: F401
from rlkit.algorithms.aggregation import SUM_NORM, aggregate, check_loss_agg
from rlkit.algorithms.erc import apply_erc, check_erc, erc_outside_band
from rlkit.algorithms.loss_base import POLICY_LOSSES, TokenLoss
from rlkit.algorithms.registry import ParameterError

__all__ = ["compute_policy_loss", "validate_loss_params"]


@dataclass(frozen=True)
class _Batch:
    valid: Tensor  # [B, T] bool
    logprobs: Tensor  # [B, T], 0 at padding, differentiable
    old_logprobs: Tensor  # [B, T], 0 at padding, detached
    advantages: Tensor  # [B, T], 0 at padding, detached
    entropy: Tensor | None  # [B, T], 1 at padding, detached
    old_entropy: Tensor | None


def compute_policy_loss(
    name: str,
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    loss_agg: str = "token-mean",
    entropy: Tensor | None = None,
    old_entropy: Tensor | None = None,
    erc: Sequence[float] | None = None,
    norm_len: int | None = None,
    **params: Any,
) -> tuple[Tensor, dict[str, float]]:
    """Aggregated policy loss of the registered loss ``name`` and its metrics.

    Args:
        name: registered loss ("ppo_clip", "dapo", "gppo", "ce_gppo", "aspo", or a user's).
        logprobs: [B, T] log-probs of the sampled tokens under the current policy (differentiable).
        old_logprobs: [B, T] log-probs under the policy that generated them (constant).
        advantages: [B] (broadcast over tokens) or [B, T] (constant).
        mask: [B, T] bool or 0/1, True for tokens that are trained on.
        loss_agg: "token-mean" | "seq-mean-token-sum" | "seq-mean-token-mean" | "seq-mean-token-sum-norm".
        entropy, old_entropy: [B, T] full-vocabulary entropies (constant); required by ``erc``.
        erc: ``(low, high)`` entropy-ratio band with ``0 < low < 1 < high``, or None.
        norm_len: divisor of ``seq-mean-token-sum-norm`` (default T); other modes reject it.
        **params: the loss's own keyword parameters; names it does not take raise.

    Returns:
        ``(loss, metrics)``: a 0-dim tensor in ``logprobs.dtype`` (exactly 0, still
        differentiable, when no token is valid) and python floats ``clip_frac``,
        ``clip_frac_low``, ``clip_frac_high``, ``dual_clip_frac``, ``ratio_mean``,
        ``ratio_max``, ``approx_kl``, plus ``erc_frac`` with ``erc`` and
        ``entropy_mean`` when ``entropy`` is given.
    """
    loss_fn = POLICY_LOSSES.get(name)
    check_loss_agg(loss_agg, norm_len=norm_len)
    band = check_erc(erc)
    POLICY_LOSSES.check_params(name, params)
    if band is not None and (entropy is None or old_entropy is None):
        raise ParameterError("erc", "needs both entropy and old_entropy [B, T]")
    batch = _prepare(logprobs, old_logprobs, advantages, mask, entropy=entropy, old_entropy=old_entropy)
    token = loss_fn(batch.logprobs, batch.old_logprobs, batch.advantages, **params)
    if not isinstance(token, TokenLoss) or token.values.shape != batch.valid.shape:
        raise TypeError(f"loss {name!r} must return a TokenLoss with values of shape {tuple(batch.valid.shape)}")
    values = token.values
    outside = None
    if band is not None:
        outside = erc_outside_band(batch.entropy, batch.old_entropy, erc=band) & batch.valid
        values = apply_erc(values, outside)
    loss = aggregate(values, batch.valid, loss_agg=loss_agg, norm_len=norm_len)
    return loss, _metrics(batch, token, outside)


def validate_loss_params(
    name: str, params: Mapping[str, Any], *, loss_agg: str = "token-mean", erc: Sequence[float] | None = None
) -> None:
    """Check, without data, what ``compute_policy_loss(name, ..., loss_agg=, erc=, **params)`` would accept.

    ``params`` holds the loss's keyword parameters and, for
    ``seq-mean-token-sum-norm`` only, ``norm_len``. Raises ``ValueError`` for an
    unknown loss (listing the known ones) and :class:`ParameterError` (a
    ``ValueError``) naming a bad key and listing the accepted ones. The loss is
    then evaluated once on a one-token float64 input so its own value checks
    (e.g. ``dual_clip`` > 1) fire here too.
    """
    loss_fn = POLICY_LOSSES.get(name)
    check_loss_agg(loss_agg, norm_len=params.get("norm_len"))
    check_erc(erc)
    also = ("norm_len",) if loss_agg == SUM_NORM else ()
    POLICY_LOSSES.check_params(name, params, also=also)
    one = torch.zeros(1, 1, dtype=torch.float64)
    loss_fn(one, one, one, **{k: v for k, v in params.items() if k not in also})


def _prepare(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    entropy: Tensor | None,
    old_entropy: Tensor | None,
) -> _Batch:
    if not isinstance(logprobs, Tensor) or logprobs.dim() != 2 or not logprobs.is_floating_point():
        raise ValueError(f"logprobs must be a floating [B, T] tensor, got {_describe(logprobs)}")
    shape = logprobs.shape
    for arg, tensor, required in (
        ("old_logprobs", old_logprobs, True),
        ("mask", mask, True),
        ("entropy", entropy, False),
        ("old_entropy", old_entropy, False),
    ):
        if (tensor is not None or required) and (not isinstance(tensor, Tensor) or tensor.shape != shape):
            raise ValueError(f"{arg} must have the shape of logprobs {tuple(shape)}, got {_describe(tensor)}")
    if not isinstance(advantages, Tensor) or advantages.shape not in (shape, shape[:1]):
        raise ValueError(f"advantages must be [B] or [B, T] with B, T = {tuple(shape)}, got {_describe(advantages)}")
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(1).expand(shape)
    valid = mask if mask.dtype == torch.bool else mask != 0
    dtype, device = logprobs.dtype, logprobs.device
    zero = torch.zeros((), dtype=dtype, device=device)
    one = torch.ones((), dtype=dtype, device=device)

    def constant(tensor: Tensor | None, fill: Tensor) -> Tensor | None:
        return None if tensor is None else torch.where(valid, tensor.detach().to(dtype), fill)

    return _Batch(
        valid=valid,
        logprobs=torch.where(valid, logprobs, zero),
        old_logprobs=constant(old_logprobs, zero),
        advantages=constant(advantages, zero),
        entropy=constant(entropy, one),
        old_entropy=constant(old_entropy, one),
    )


def _metrics(batch: _Batch, token: TokenLoss, outside: Tensor | None) -> dict[str, float]:
    """Token-mean metrics over valid tokens, gathered in one device-to-host copy."""
    with torch.no_grad():
        valid = batch.valid
        count = valid.sum().clamp(min=1).to(torch.float64)
        none = torch.zeros_like(valid)

        def frac(flags: Tensor | None) -> Tensor:
            return ((none if flags is None else flags.bool()) & valid).sum().to(torch.float64) / count

        def mean(values: Tensor) -> Tensor:
            return torch.where(valid, values, torch.zeros_like(values)).sum().to(torch.float64) / count

        ratio = torch.exp(batch.logprobs - batch.old_logprobs)
        low = none if token.clipped_low is None else token.clipped_low.bool()
        high = none if token.clipped_high is None else token.clipped_high.bool()
        ratio_max = torch.where(valid, ratio, torch.zeros_like(ratio)).amax() if valid.numel() else ratio.new_zeros(())
        stats = {
            "clip_frac": frac(low | high),
            "clip_frac_low": frac(low),
            "clip_frac_high": frac(high),
            "dual_clip_frac": frac(token.dual_clipped),
            "ratio_mean": mean(ratio),
            "ratio_max": ratio_max.to(torch.float64),
            "approx_kl": mean(batch.old_logprobs - batch.logprobs),
        }
        if outside is not None:
            stats["erc_frac"] = frac(outside)
        if batch.entropy is not None:
            stats["entropy_mean"] = mean(batch.entropy)
        values = torch.stack(list(stats.values())).tolist()
    return dict(zip(stats, values))


def _describe(value: object) -> str:
    if isinstance(value, Tensor):
        return f"tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    return type(value).__name__
