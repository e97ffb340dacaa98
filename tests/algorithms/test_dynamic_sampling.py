"""DAPO dynamic sampling (algorithms.md section 8): uniform-group mask and the refill buffer."""

from __future__ import annotations

import pytest
import torch

from rlkit.algorithms import DynamicSamplingBuffer, is_uniform_group, uniform_group_mask


def test_uniform_group_mask_with_shuffled_ids() -> None:
    # groups: 5 -> [1, 1, 1] uniform; 2 -> [0, 1] mixed; 9 -> [0.5] size 1 (kept: no group to compare).
    rewards = torch.tensor([1.0, 0.0, 1.0, 0.5, 1.0, 1.0])
    ids = torch.tensor([5, 2, 5, 9, 2, 5])
    assert uniform_group_mask(rewards, ids).tolist() == [True, False, True, False, False, True]


def test_is_uniform_group() -> None:
    assert is_uniform_group([0.0, 0.0]) and not is_uniform_group([0.0, 1.0]) and not is_uniform_group([1.0])


def test_dapo_refill_accumulates_then_truncates_to_target() -> None:
    buffer: DynamicSamplingBuffer[str] = DynamicSamplingBuffer(target_groups=3)
    buffer.add(["a", "b", "c"], metrics=[[1, 1], [0, 1], [0, 0]])  # keeps b
    assert not buffer.done and buffer.kept_groups == 1
    buffer.add(["d", "e"], metrics=[[1, 0], [1, 1]])  # keeps d
    assert not buffer.done
    buffer.add(["f", "g", "h"], metrics=[[0, 1], [1, 0], [0, 1]])  # keeps f, g, h
    assert buffer.done
    assert buffer.take() == ["b", "d", "f"]
    assert buffer.metrics() == {
        "dynamic_sampling/kept_groups": 5.0,
        "dynamic_sampling/dropped_groups": 3.0,
        "dynamic_sampling/gen_rounds": 3.0,
    }
    with pytest.raises(RuntimeError, match="buffer is done"):
        buffer.add(["i"], metrics=[[0, 1]])


def test_round_cap_stops_with_a_smaller_batch() -> None:
    buffer: DynamicSamplingBuffer[int] = DynamicSamplingBuffer(target_groups=4, max_gen_batches=2)
    buffer.add([0, 1], metrics=[[0, 1], [1, 1]])
    buffer.add([2, 3], metrics=[[0, 1], [0, 1]])
    assert buffer.done and buffer.take() == [0, 2, 3]


def test_klear_drop_without_refill() -> None:
    # Oversized generation batch once (8 groups for a target of 4); survivors 3 -> trimmed to a multiple of 2.
    buffer: DynamicSamplingBuffer[int] = DynamicSamplingBuffer(target_groups=4, max_gen_batches=1)
    metrics = [[1, 1], [0, 1], [0, 0], [1, 0], [1, 1], [0, 0], [0, 1], [1, 1]]
    buffer.add(list(range(8)), metrics=metrics)
    assert buffer.done
    assert buffer.take(multiple_of=2) == [1, 3]
    assert buffer.take() == [1, 3, 6]
    many: DynamicSamplingBuffer[int] = DynamicSamplingBuffer(target_groups=2, max_gen_batches=1)
    many.add([0, 1, 2], metrics=[[0, 1], [0, 1], [0, 1]])
    assert many.take(multiple_of=4) == [0, 1]  # the target itself is never trimmed


def test_buffer_errors() -> None:
    with pytest.raises(ValueError, match="target_groups must be >= 1"):
        DynamicSamplingBuffer(target_groups=0)
    with pytest.raises(ValueError, match="max_gen_batches must be >= 0"):
        DynamicSamplingBuffer(target_groups=1, max_gen_batches=-1)
    with pytest.raises(ValueError, match="got 1 groups but 2 metric lists"):
        DynamicSamplingBuffer(target_groups=1).add([0], metrics=[[0], [1]])
