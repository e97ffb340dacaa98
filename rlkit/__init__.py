"""rlkit: RL post-training for LLMs with verifiable rewards.

Ray places vLLM rollout engines and FSDP2 learners; the GRPO family of losses
lives in :mod:`rlkit.algorithms`, verifiable rewards in :mod:`rlkit.rewards`,
isolated code execution in :mod:`rlkit.sandbox`.

``import rlkit`` stays light: torch, Ray and vLLM load only when used.
"""

__version__ = "0.1.0"
__all__ = ["Trainer", "load_config", "__version__"]


def __getattr__(name: str):
    if name == "Trainer":
        from rlkit.trainer import Trainer

        return Trainer
    if name == "load_config":
        from rlkit.config import load_config

        return load_config
    raise AttributeError(f"module 'rlkit' has no attribute {name!r}")
