"""Verifiable rewards: a registry of scoring functions and batched scoring.

``from rlkit.rewards import register_reward, get_reward, score_batch``
"""

from rlkit.rewards.registry import (
    RewardResult,
    get_reward,
    list_rewards,
    register_reward,
)

__all__ = ["RewardResult", "get_reward", "list_rewards", "register_reward"]
