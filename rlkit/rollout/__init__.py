"""Generation: vLLM engine actors and weight sync into them."""

from rlkit.rollout.types import Completion, SamplingConfig

__all__ = ["Completion", "SamplingConfig"]
