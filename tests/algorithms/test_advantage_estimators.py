"""Advantage estimators (algorithms.md section 2): golden numbers, loop vs vectorized, edge cases."""

from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

from rlkit.algorithms import compute_advantages, validate_advantage_params

F64 = torch.float64
NAMES = ("grpo", "dr_grpo", "rloo", "reinforce_pp")

# rewards [1,0,1,1 | 0.5 | 0,0], ids [7,7,7,7 | 3 | 9,9].
# Group 7: μ = 0.75, σ = sqrt((3·0.25² + 0.75²)/3) = 0.5. Group 3 has one member, group 9 is uniform: 0.
# grpo: 0.25/(0.5+1e-6) = 0.499999, -0.75/(0.5+1e-6) = -1.499997.
# dr_grpo: r - μ. rloo: n/(n-1)·(r - μ) = 4/3·(0.25, -0.75).
# reinforce_pp: a = [0.25,-0.75,0.25,0.25,0,0,0], mean 0, unbiased std sqrt(0.75/6) = 0.353553 -> 0.707105, -2.121314.
REWARDS = [1.0, 0.0, 1.0, 1.0, 0.5, 0.0, 0.0]
IDS = [7, 7, 7, 7, 3, 9, 9]
GOLDEN = {
    "grpo": [0.499999, -1.499997, 0.499999, 0.499999, 0, 0, 0],
    "dr_grpo": [0.25, -0.75, 0.25, 0.25, 0, 0, 0],
    "rloo": [1 / 3, -1.0, 1 / 3, 1 / 3, 0, 0, 0],
    "reinforce_pp": [0.707105, -2.121314, 0.707105, 0.707105, 0, 0, 0],
}


@pytest.mark.parametrize("name", NAMES)
def test_golden_example_in_any_order(name: str) -> None:
    rewards, ids = torch.tensor(REWARDS, dtype=F64), torch.tensor(IDS)
    expected = torch.tensor(GOLDEN[name], dtype=F64)
    assert_close(compute_advantages(name, rewards, ids), expected, atol=1e-6, rtol=0)
    perm = torch.tensor([5, 0, 4, 2, 6, 1, 3])
    assert_close(compute_advantages(name, rewards[perm], ids[perm]), expected[perm], atol=1e-6, rtol=0)


def _loop_reference(name: str, rewards: list[float], ids: list[int], eps: float = 1e-6) -> list[float]:
    """Straight from the table of section 2, one group at a time."""
    out = [0.0] * len(rewards)
    for gid in set(ids):
        members = [i for i, g in enumerate(ids) if g == gid]
        values = [rewards[i] for i in members]
        n = len(values)
        if n == 1 or len(set(values)) == 1:
            continue
        mu = sum(values) / n
        sigma = math.sqrt(sum((v - mu) ** 2 for v in values) / (n - 1))
        for i in members:
            out[i] = {
                "grpo": (rewards[i] - mu) / (sigma + eps),
                "dr_grpo": rewards[i] - mu,
                "rloo": rewards[i] - (sum(values) - rewards[i]) / (n - 1),
                "reinforce_pp": rewards[i] - mu,
            }[name]
    if name == "reinforce_pp":
        if len(out) < 2:
            return [0.0] * len(out)
        m = sum(out) / len(out)
        s = math.sqrt(sum((a - m) ** 2 for a in out) / (len(out) - 1))
        out = [(a - m) / (s + eps) for a in out]
    return out


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorized_equals_loop_with_shuffled_sparse_ids(name: str, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    sizes = [1, 2, 3, 5, 4, 1, 6]
    raw_ids = [-(10**12), 3, 10**15, 17, -5, 2**40, 0]
    ids = torch.tensor([gid for gid, n in zip(raw_ids, sizes) for _ in range(n)])
    rewards = torch.randint(0, 3, (len(ids),), generator=g).to(F64) / 2
    rewards[ids == 17] = 0.5  # a uniform group
    perm = torch.randperm(len(ids), generator=g)
    ids, rewards = ids[perm], rewards[perm]
    expected = torch.tensor(_loop_reference(name, rewards.tolist(), ids.tolist()), dtype=F64)
    assert_close(compute_advantages(name, rewards, ids), expected)


def test_degenerate_groups_are_exactly_zero() -> None:
    # 0.1 + 0.1 + 0.1 != 0.3 in floating point: the mean of a uniform group is not exactly 0.1.
    rewards = torch.tensor([0.1, 0.1, 0.1, 0.7], dtype=F64)
    ids = torch.tensor([4, 4, 4, 8])
    for name in NAMES:
        assert torch.equal(compute_advantages(name, rewards, ids), torch.zeros(4, dtype=F64))
    assert torch.equal(compute_advantages("reinforce_pp", torch.tensor([1.0]), torch.tensor([0])), torch.zeros(1))


def test_grpo_without_std_is_dr_grpo() -> None:
    rewards, ids = torch.tensor(REWARDS, dtype=F64), torch.tensor(IDS)
    assert_close(compute_advantages("grpo", rewards, ids, norm_std=False), compute_advantages("dr_grpo", rewards, ids))
    # eps enters the denominator: σ = 0.5, eps = 0.5 -> 0.25/1.0.
    assert compute_advantages("grpo", rewards, ids, eps=0.5)[0].item() == pytest.approx(0.25)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_kept_inputs_untouched(dtype: torch.dtype) -> None:
    rewards, ids = torch.tensor(REWARDS, dtype=dtype), torch.tensor(IDS)
    before = rewards.clone(), ids.clone()
    for name in NAMES:
        assert compute_advantages(name, rewards, ids).dtype == dtype
    assert torch.equal(before[0], rewards) and torch.equal(before[1], ids)
    assert compute_advantages("grpo", torch.tensor([1, 0]), torch.tensor([0, 0])).dtype == torch.float32


def test_errors() -> None:
    r, ids = torch.tensor([1.0, 0.0]), torch.tensor([0, 0])
    with pytest.raises(ValueError, match="unknown advantage 'gae'; known: dr_grpo, grpo, reinforce_pp, rloo"):
        compute_advantages("gae", r, ids)
    with pytest.raises(TypeError, match="norm_std: unknown parameter for advantage 'rloo'; accepted: \\(none\\)"):
        compute_advantages("rloo", r, ids, norm_std=True)
    with pytest.raises(ValueError, match="eps: must be >= 0"):
        compute_advantages("grpo", r, ids, eps=-1.0)
    with pytest.raises(ValueError, match="group_ids must be \\[N\\]"):
        compute_advantages("grpo", r, torch.tensor([0]))
    with pytest.raises(TypeError, match="group_ids must be an integer tensor"):
        compute_advantages("grpo", r, torch.tensor([0.0, 0.0]))
    with pytest.raises(ValueError, match="norm_std: expected bool, got str"):
        validate_advantage_params("grpo", {"norm_std": "yes"})
    validate_advantage_params("reinforce_pp", {"eps": 1e-4})
