"""Rollout/learner mismatch: importance weights between the sampler and the learner, and their KL.

The engine samples a response with its own kernels and precision, ``π_roll`` (its reported
log-probs, ``roll``); the learner scores the same tokens with the same weights as ``π_old``
(``old``, the old log-probs of the update). The policy gradient assumes samples from
``π_old``, so each token's loss is weighted by ``ρ = π_old / π_roll``:

- token level:    ``ρ_t = exp(old_t − roll_t)``
- sequence level: ``ρ_i = exp(Σ_t m_t · (old_t − roll_t))``, the same value on every token of response i
- ``tis`` (truncated importance sampling): ``w = min(ρ, C)``
- ``mis`` (masked importance sampling):    ``w = ρ · 1[ρ ≤ C]`` (a token or response past C gets weight 0)
- ``none``: ``w = 1``

The weights are constants (no gradient flows into them). They multiply the per-token policy
loss (the learner scales the advantages by them: every built-in loss is positively homogeneous
in A), and weight-0 tokens stay in the aggregation denominators, like ERC's tokens.

The mismatch is logged as ``KL(π_roll ‖ π_old)``, estimated per sampled token with Schulman's
k3: ``x = old − roll``, ``kl = eˣ − x − 1 ≥ 0`` (the samples come from ``π_roll``).

Sources: F. Yao, L. Liu et al., "Your Efficient RL Framework Secretly Brings You Off-Policy RL
Training" (blog, 2025: TIS, token level, C = 2); J. Liu, Y. Li et al., "When Speed Kills
Stability: Demystifying RL Collapse from the Training-Inference Mismatch" (blog, 2025:
sequence-level and masked IS); verl's ``rollout_correction`` (token/sequence, truncate/mask).

The functions take any behaviour log-probs, so an asynchronous trainer whose samples come from
an older policy uses them unchanged with that policy's log-probs as ``behaviour_logprobs``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["CORRECTION_KINDS", "CORRECTION_LEVELS", "CorrectionWeights", "mismatch_kl", "rollout_correction"]

CORRECTION_LEVELS = ("token", "sequence")


@dataclass(frozen=True)
class CorrectionWeights:
    """``weights`` [B, T] (1 outside ``mask``), ``log_ratio`` [B, T] (log ρ at the chosen level, 0
    outside ``mask``) and ``over`` [B, T] bool (valid tokens whose ρ exceeds C)."""

    weights: Tensor
    log_ratio: Tensor
    over: Tensor


def _none(log_ratio: Tensor, log_clip: float) -> Tensor:
    return torch.ones_like(log_ratio)


def _tis(log_ratio: Tensor, log_clip: float) -> Tensor:
    return log_ratio.clamp(max=log_clip).exp()


def _mis(log_ratio: Tensor, log_clip: float) -> Tensor:
    # exp is taken only where it is <= C, so an overflowing sequence ratio cannot make inf * 0 = nan.
    return torch.where(log_ratio <= log_clip, log_ratio.clamp(max=log_clip).exp(), torch.zeros_like(log_ratio))


CORRECTION_KINDS: dict[str, Callable[[Tensor, float], Tensor]] = {"none": _none, "tis": _tis, "mis": _mis}


def _check(behaviour_logprobs: Tensor, old_logprobs: Tensor, mask: Tensor) -> Tensor:
    if behaviour_logprobs.dim() != 2 or old_logprobs.shape != behaviour_logprobs.shape or mask.shape != old_logprobs.shape:
        raise ValueError(
            "behaviour_logprobs, old_logprobs and mask must all be [B, T]; got "
            f"{tuple(behaviour_logprobs.shape)}, {tuple(old_logprobs.shape)} and {tuple(mask.shape)}"
        )
    return mask if mask.dtype == torch.bool else mask != 0


def rollout_correction(
    behaviour_logprobs: Tensor,
    old_logprobs: Tensor,
    mask: Tensor,
    *,
    kind: str = "tis",
    level: str = "token",
    clip: float = 2.0,
) -> CorrectionWeights:
    """Importance weights ``w`` of the module docstring for each token.

    Args:
        behaviour_logprobs: [B, T] log-probs of the sampled tokens under the policy that sampled
            them (the engine's ``rollout_logprobs``).
        old_logprobs: [B, T] the learner's log-probs of the same tokens (``π_old``).
        mask: [B, T] bool or 0/1: tokens whose behaviour log-probs are known (sampled response
            tokens; not padding, not replayed answers). Elsewhere the weight is exactly 1.
        kind: ``"none"`` | ``"tis"`` | ``"mis"``.
        level: ``"token"`` | ``"sequence"``.
        clip: C > 0.
    """
    valid = _check(behaviour_logprobs, old_logprobs, mask)
    if kind not in CORRECTION_KINDS:
        raise ValueError(f"unknown rollout correction kind {kind!r}; known: {', '.join(CORRECTION_KINDS)}")
    if level not in CORRECTION_LEVELS:
        raise ValueError(f"unknown rollout correction level {level!r}; known: {', '.join(CORRECTION_LEVELS)}")
    if not clip > 0:
        raise ValueError(f"rollout correction clip must be > 0, got {clip}")
    with torch.no_grad():
        diff = torch.where(valid, old_logprobs.detach() - behaviour_logprobs.detach(), torch.zeros_like(old_logprobs))
        log_ratio = diff if level == "token" else diff.sum(dim=1, keepdim=True).expand_as(diff)
        log_ratio = torch.where(valid, log_ratio, torch.zeros_like(log_ratio))
        log_clip = math.log(clip)
        weights = torch.where(valid, CORRECTION_KINDS[kind](log_ratio, log_clip), torch.ones_like(log_ratio))
        over = valid & (log_ratio > log_clip)
    return CorrectionWeights(weights=weights, log_ratio=log_ratio, over=over)


def mismatch_kl(behaviour_logprobs: Tensor, old_logprobs: Tensor, mask: Tensor) -> Tensor:
    """[B, T] per-token k3 estimate of ``KL(π_behaviour ‖ π_old)``: ``eˣ − x − 1`` with
    ``x = old − behaviour``; 0 outside ``mask``. Average it over ``mask`` to log it."""
    valid = _check(behaviour_logprobs, old_logprobs, mask)
    with torch.no_grad():
        x = torch.where(valid, old_logprobs.detach() - behaviour_logprobs.detach(), torch.zeros_like(old_logprobs))
        return torch.expm1(x) - x
