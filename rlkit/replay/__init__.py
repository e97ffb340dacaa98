"""RLEP experience replay (algorithms.md section 10): pools of verified answers, replayed into groups.

``rlkit.replay.collect.collect_pool`` (``rlkit collect-pool``) builds a pool from
a trained checkpoint; ``replay.pool`` in an experiment config replays it.
"""

from rlkit.replay.pool import PooledResponse, PoolWriter, ReplayPool, prompt_key

__all__ = ["PooledResponse", "PoolWriter", "ReplayPool", "prompt_key"]
