"""Trajectory: segments flatten to ids, masks and log-probs; fork shares a prefix at a boundary."""

from __future__ import annotations

import pytest

from rlkit.envs import Trajectory


def _three_turns() -> Trajectory:
    t = Trajectory(prompt_ids=[1, 2], group_id=5)
    t.append_sampled([10, 11, 12], [-0.1, -0.2, -0.3], text="a")
    t.append_inserted([20, 21], kind="observation")
    t.append_sampled([13], [-0.4])
    t.append_inserted([22], kind="end_of_turn")
    t.append_sampled([14, 15], [-0.5, -0.6])
    return t


def test_flattened_views():
    t = _three_turns()
    assert t.token_ids == [10, 11, 12, 20, 21, 13, 22, 14, 15]
    assert t.loss_mask == [1, 1, 1, 0, 0, 1, 0, 1, 1]
    assert t.rollout_logprobs == [-0.1, -0.2, -0.3, 0.0, 0.0, -0.4, 0.0, -0.5, -0.6]
    assert t.full_ids == [1, 2, *t.token_ids]
    assert (t.num_sampled, t.turns, t.done, t.truncated) == (6, 3, False, False)
    t.finish("length")
    assert (t.done, t.truncated, t.finish_reason) == (True, True, "length")
    with pytest.raises(ValueError, match="is finished"):
        t.append_sampled([1], [0.0])


def test_fork_shares_the_prefix_and_appends_independently():
    t = _three_turns()
    child = t.fork(2)  # after the first observation
    assert (child.parent_id, child.fork_at, child.group_id, child.turns) == (t.traj_id, 2, 5, 1)
    assert child.token_ids == [10, 11, 12, 20, 21]
    assert child.segments[0] is t.segments[0]  # shared, not copied (hard attribution keys on it)
    child.append_sampled([99], [-1.0])
    assert t.token_ids[-1] == 15 and child.token_ids == [10, 11, 12, 20, 21, 99]
    with pytest.raises(ValueError, match="fork at segment 9"):
        t.fork(9)


def test_segment_lengths_must_match():
    t = Trajectory(prompt_ids=[1])
    with pytest.raises(ValueError, match="2 ids but 1 log-probs"):
        t.append_sampled([1, 2], [0.0])
