"""Pure-torch RL algorithms: advantages, policy losses, ERC, KL, SFT term, sampling helpers.

The contract::

    adv = compute_advantages(name, rewards, group_ids, **params)
    loss, metrics = compute_policy_loss(name, logprobs, old_logprobs, advantages, mask, *,
                                        loss_agg="token-mean", entropy=None, old_entropy=None, **params)
    kl = kl_penalty(logprobs, ref_logprobs, kind)

Importing this package registers the built-in losses ("ppo_clip", "dapo",
"gppo", "ce_gppo", "aspo") and estimators ("grpo", "dr_grpo", "rloo",
"reinforce_pp"); ``@register_policy_loss`` / ``@register_advantage`` add more.
"""

from rlkit.algorithms.advantages import (
    ADVANTAGES,
    compute_advantages,
    register_advantage,
    validate_advantage_params,
)
from rlkit.algorithms.aggregation import AGG_MODES, aggregate, aggregation_weight
from rlkit.algorithms.dynamic_sampling import DynamicSamplingBuffer, is_uniform_group, uniform_group_mask
from rlkit.algorithms.kl import KL_ESTIMATORS, kl_penalty
from rlkit.algorithms.logprobs import token_logprobs_from_hidden
from rlkit.algorithms.loss_base import POLICY_LOSSES, TokenLoss, register_policy_loss
from rlkit.algorithms.overlong import filter_truncated, overlong_penalty
from rlkit.algorithms.policy_loss import compute_policy_loss, validate_loss_params
from rlkit.algorithms.registry import ParameterError
from rlkit.algorithms.rollout_correction import CorrectionWeights, mismatch_kl, rollout_correction
from rlkit.algorithms.sft import sft_loss

__all__ = [
    "ADVANTAGES",
    "AGG_MODES",
    "CorrectionWeights",
    "KL_ESTIMATORS",
    "POLICY_LOSSES",
    "DynamicSamplingBuffer",
    "ParameterError",
    "TokenLoss",
    "aggregate",
    "aggregation_weight",
    "compute_advantages",
    "compute_policy_loss",
    "filter_truncated",
    "is_uniform_group",
    "kl_penalty",
    "mismatch_kl",
    "overlong_penalty",
    "register_advantage",
    "register_policy_loss",
    "rollout_correction",
    "sft_loss",
    "token_logprobs_from_hidden",
    "uniform_group_mask",
    "validate_advantage_params",
    "validate_loss_params",
]
