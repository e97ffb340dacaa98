"""Outcome-reward advantage estimators over groups of responses.

A group is the set of samples sharing a ``group_ids`` value (arbitrary int64,
any order, not necessarily contiguous). Every estimator gives 0 to a group of
size 1 (no baseline exists) and to a group whose rewards are all equal.

Registered estimators take ``(rewards [N], index [N])`` where ``index`` maps
each sample to a dense group number in ``[0, G)``, plus typed keyword-only
parameters, and return advantages [N] in the rewards' dtype. The helpers
:func:`group_mean`, :func:`group_std` and :func:`degenerate_groups` are meant
for user estimators too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from rlkit.algorithms.registry import ParameterError, Registry

__all__ = [
    "ADVANTAGES",
    "compute_advantages",
    "degenerate_groups",
    "group_mean",
    "group_std",
    "register_advantage",
    "validate_advantage_params",
]

AdvantageFn = Callable[..., Tensor]

ADVANTAGES: Registry[AdvantageFn] = Registry("advantage", positional=("rewards", "index"))


def register_advantage(name: str) -> Callable[[AdvantageFn], AdvantageFn]:
    """Register ``fn(rewards [N], index [N], *, <typed params with defaults>) -> Tensor [N]``.

    ``index`` holds dense group numbers ``0..G-1``. A taken name raises ``ValueError``.
    """
    return ADVANTAGES.register(name)


def compute_advantages(name: str, rewards: Tensor, group_ids: Tensor, **params: Any) -> Tensor:
    """Advantages [N] of the registered estimator ``name``.

    Args:
        name: "grpo", "dr_grpo", "rloo", "reinforce_pp" or a user's.
        rewards: [N] one scalar reward per response (integer/bool rewards become float32).
        group_ids: [N] integer ids; equal ids form a group.
        **params: the estimator's keyword parameters; names it does not take raise.
    """
    fn = ADVANTAGES.get(name)
    ADVANTAGES.check_params(name, params)
    if not isinstance(rewards, Tensor) or rewards.dim() != 1:
        raise ValueError(f"rewards must be a 1-D tensor [N], got {getattr(rewards, 'shape', type(rewards).__name__)}")
    if not isinstance(group_ids, Tensor) or group_ids.shape != rewards.shape:
        raise ValueError(
            f"group_ids must be [N] like rewards {tuple(rewards.shape)}, got {getattr(group_ids, 'shape', None)}"
        )
    if group_ids.is_floating_point() or group_ids.is_complex() or group_ids.dtype == torch.bool:
        raise TypeError(f"group_ids must be an integer tensor, got dtype {group_ids.dtype}")
    if not rewards.is_floating_point():
        rewards = rewards.to(torch.float32)
    rewards = rewards.detach()
    _, index = torch.unique(group_ids, return_inverse=True)
    out = fn(rewards, index, **params)
    if not isinstance(out, Tensor) or out.shape != rewards.shape:
        raise TypeError(f"advantage {name!r} must return a tensor of shape {tuple(rewards.shape)}")
    return out


def validate_advantage_params(name: str, params: Mapping[str, Any]) -> None:
    """Check ``params`` for the estimator ``name`` without data.

    Raises ``ValueError`` for an unknown estimator (listing the known ones) and
    :class:`ParameterError` naming a bad key (listing the accepted ones); then
    runs the estimator on a two-sample group so its value checks fire too.
    """
    fn = ADVANTAGES.get(name)
    ADVANTAGES.check_params(name, params)
    fn(torch.tensor([0.0, 1.0], dtype=torch.float64), torch.zeros(2, dtype=torch.long), **params)


def _group_sum(values: Tensor, index: Tensor) -> Tensor:
    groups = int(index.max()) + 1 if index.numel() else 0
    return values.new_zeros(groups).index_add(0, index, values)


def group_mean(rewards: Tensor, index: Tensor) -> Tensor:
    """``μ_G`` of each sample's group, [N]."""
    counts = _group_sum(torch.ones_like(rewards), index)
    return (_group_sum(rewards, index) / counts)[index]


def group_std(rewards: Tensor, index: Tensor) -> Tensor:
    """Unbiased ``σ_G = sqrt(Σ(r−μ)²/(n−1))`` of each sample's group, [N] (0 for n = 1)."""
    counts = _group_sum(torch.ones_like(rewards), index)
    squares = _group_sum((rewards - group_mean(rewards, index)) ** 2, index)
    return (squares / (counts - 1).clamp(min=1)).sqrt()[index]


def degenerate_groups(rewards: Tensor, index: Tensor) -> Tensor:
    """Bool [N]: the sample's group has one member or all-equal rewards (advantage 0)."""
    groups = int(index.max()) + 1 if index.numel() else 0
    high = rewards.new_full((groups,), -torch.inf).scatter_reduce(0, index, rewards, reduce="amax")
    low = rewards.new_full((groups,), torch.inf).scatter_reduce(0, index, rewards, reduce="amin")
    return (high == low)[index]


def _check_eps(eps: float) -> None:
    if eps < 0:
        raise ParameterError("eps", f"must be >= 0, got {eps!r}")


def _centered(rewards: Tensor, index: Tensor) -> Tensor:
    """``r_i − μ_G``, exactly 0 in degenerate groups."""
    centered = rewards - group_mean(rewards, index)
    return torch.where(degenerate_groups(rewards, index), torch.zeros_like(centered), centered)


@register_advantage("grpo")
def grpo_advantage(rewards: Tensor, index: Tensor, *, norm_std: bool = True, eps: float = 1e-6) -> Tensor:
    """GRPO outcome supervision, DeepSeekMath arXiv 2402.03300 (section 4.1.2): ``A_i = (r_i − μ_G) / (σ_G + eps)``.

    ``norm_std=False`` gives ``r_i − μ_G``. σ_G is the unbiased group std.
    """
    _check_eps(eps)
    centered = _centered(rewards, index)
    return centered / (group_std(rewards, index) + eps) if norm_std else centered


@register_advantage("dr_grpo")
def dr_grpo_advantage(rewards: Tensor, index: Tensor) -> Tensor:
    """Dr.GRPO, "Understanding R1-Zero-Like Training" arXiv 2503.20783: ``A_i = r_i − μ_G`` (no std division)."""
    return _centered(rewards, index)


@register_advantage("rloo")
def rloo_advantage(rewards: Tensor, index: Tensor) -> Tensor:
    """RLOO, "Back to Basics" arXiv 2402.14740: ``A_i = r_i − (Σ_G r − r_i)/(n−1) = n/(n−1)·(r_i − μ_G)``."""
    counts = _group_sum(torch.ones_like(rewards), index)[index]
    return _centered(rewards, index) * counts / (counts - 1).clamp(min=1)


@register_advantage("reinforce_pp")
def reinforce_pp_advantage(rewards: Tensor, index: Tensor, *, eps: float = 1e-6) -> Tensor:
    """REINFORCE++-baseline, arXiv 2501.03262: ``a_i = r_i − μ_G``, ``A_i = (a_i − mean(a))/(std(a) + eps)`` (batch).

    The batch statistics weight each response once (unbiased std); N = 1 gives 0.
    """
    _check_eps(eps)
    centered = _centered(rewards, index)
    if centered.numel() < 2:
        return torch.zeros_like(centered)
    normalised = (centered - centered.mean()) / (centered.std() + eps)
    return torch.where(degenerate_groups(rewards, index), torch.zeros_like(normalised), normalised)
