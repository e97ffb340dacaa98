"""DAPO dynamic sampling: drop groups with all-equal rewards.

DAPO, arXiv 2503.14476: a group (size ≥ 2) whose filter metric is the same for
every member has all-zero GRPO advantages and only dilutes the batch. Two
policies, both served by :class:`DynamicSamplingBuffer`:

- DAPO: keep generating batches, accumulating surviving groups, until
  ``target_groups`` are collected (``max_gen_batches`` caps the rounds, 0 =
  unlimited), then truncate to exactly the target.
- Klear (drop without refill): ``max_gen_batches=1`` on an oversized
  generation batch; train on the survivors, truncated to the target, or a
  smaller batch trimmed to a multiple of the data-parallel size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, TypeVar

import torch
from torch import Tensor

from rlkit.algorithms.advantages import degenerate_groups

__all__ = ["DynamicSamplingBuffer", "is_uniform_group", "uniform_group_mask"]

G = TypeVar("G")


def uniform_group_mask(rewards: Tensor, group_ids: Tensor) -> Tensor:
    """Bool [N]: True for samples whose group has at least 2 members, all with equal rewards."""
    if rewards.dim() != 1 or group_ids.shape != rewards.shape:
        raise ValueError(
            f"rewards and group_ids must both be [N]; got {tuple(rewards.shape)} and {tuple(group_ids.shape)}"
        )
    _, index = torch.unique(group_ids, return_inverse=True)
    sizes = torch.bincount(index)[index]
    return degenerate_groups(rewards, index) & (sizes >= 2)


def is_uniform_group(values: Sequence[float]) -> bool:
    """Whether a group of at least 2 members has one value for all (the group is dropped)."""
    return len(values) >= 2 and all(v == values[0] for v in values)


class DynamicSamplingBuffer(Generic[G]):
    """Accumulates non-uniform groups over generation rounds until a target is met.

    Usage per training step::

        buffer = DynamicSamplingBuffer(target_groups=128, max_gen_batches=0)
        while not buffer.done:
            groups, metrics = generate_and_score()       # one generation round
            buffer.add(groups, metrics=metrics)         # metrics[i]: filter values of group i
        batch = buffer.take(multiple_of=dp_size)

    Args:
        target_groups: groups wanted in the training batch.
        max_gen_batches: cap on generation rounds; 0 = unlimited, 1 = Klear's
            drop-without-refill.
    """

    def __init__(self, *, target_groups: int, max_gen_batches: int = 0) -> None:
        if target_groups < 1:
            raise ValueError(f"target_groups must be >= 1, got {target_groups}")
        if max_gen_batches < 0:
            raise ValueError(f"max_gen_batches must be >= 0 (0 = unlimited), got {max_gen_batches}")
        self.target_groups = target_groups
        self.max_gen_batches = max_gen_batches
        self.rounds = 0
        self.dropped_groups = 0
        self._kept: list[G] = []

    @property
    def kept_groups(self) -> int:
        """Surviving groups collected so far (before truncation)."""
        return len(self._kept)

    @property
    def done(self) -> bool:
        """True once the target is met or the round cap is reached."""
        capped = self.max_gen_batches > 0 and self.rounds >= self.max_gen_batches
        return len(self._kept) >= self.target_groups or capped

    def add(self, groups: Sequence[G], *, metrics: Sequence[Sequence[float]]) -> None:
        """Add one generation round: ``groups[i]`` is kept unless ``metrics[i]`` is uniform."""
        if len(groups) != len(metrics):
            raise ValueError(f"got {len(groups)} groups but {len(metrics)} metric lists")
        if self.done:
            raise RuntimeError("buffer is done; call take() instead of generating another round")
        self.rounds += 1
        for group, values in zip(groups, metrics):
            if is_uniform_group(values):
                self.dropped_groups += 1
            else:
                self._kept.append(group)

    def take(self, *, multiple_of: int = 1) -> list[G]:
        """The training groups: the first ``target_groups`` survivors, or, when fewer
        survived before the round cap, as many as fit a multiple of ``multiple_of``."""
        if multiple_of < 1:
            raise ValueError(f"multiple_of must be >= 1, got {multiple_of}")
        count = min(len(self._kept), self.target_groups)
        if count < self.target_groups:
            count -= count % multiple_of
        return self._kept[:count]

    def metrics(self) -> dict[str, float]:
        """Counts to log per step: surviving and dropped groups, generation rounds."""
        return {
            "dynamic_sampling/kept_groups": float(len(self._kept)),
            "dynamic_sampling/dropped_groups": float(self.dropped_groups),
            "dynamic_sampling/gen_rounds": float(self.rounds),
        }
