"""Aggregation modes (algorithms.md section 5) and micro-batch / data-parallel weighting."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from rlkit.algorithms import aggregate, aggregation_weight, compute_policy_loss

F64 = torch.float64
AGGS = ("token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm")

# B=2, T=3, mask [[1,1,0],[1,0,0]], on-policy ppo_clip, A=[2,-1] -> ℓ = [[-2,-2,·],[1,·,·]], Σℓ = -3.
# token-mean: -3/3 = -1; seq-mean-token-sum: -3/2 = -1.5; seq-mean-token-mean: (-4/2 + 1/1)/2 = -0.5;
# seq-mean-token-sum-norm: -3/(3·2) = -0.5, with norm_len 4: -3/(4·2) = -0.375.
SECTION5 = [
    ("token-mean", {}, -1.0),
    ("seq-mean-token-sum", {}, -1.5),
    ("seq-mean-token-mean", {}, -0.5),
    ("seq-mean-token-sum-norm", {}, -0.5),
    ("seq-mean-token-sum-norm", {"norm_len": 4}, -0.375),
]


def _section5(**kw):
    logprobs = torch.tensor([[-0.3, -1.2, 7.0], [-0.8, 3.0, -9.0]], dtype=F64, requires_grad=True)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]], dtype=torch.bool)
    loss, _ = compute_policy_loss(
        "ppo_clip", logprobs, logprobs.detach(), torch.tensor([2.0, -1.0], dtype=F64), mask, **kw
    )
    loss.backward()
    return loss, logprobs.grad


@pytest.mark.parametrize(("agg", "kw", "expected"), SECTION5)
def test_section5_example(agg: str, kw: dict, expected: float) -> None:
    loss, _ = _section5(loss_agg=agg, **kw)
    assert loss.item() == pytest.approx(expected, abs=1e-12)


def test_section5_token_mean_gradient() -> None:
    # g = -r·A · w with r = 1, w = 1/3: [[-2/3, -2/3, 0], [1/3, 0, 0]].
    _, grad = _section5()
    assert_close(grad, torch.tensor([[-0.666667, -0.666667, 0.0], [0.333333, 0.0, 0.0]], dtype=F64), atol=1e-6, rtol=0)


def test_empty_rows_are_excluded_from_denominators() -> None:
    values = torch.tensor([[1.0, 2.0], [9.0, 9.0], [3.0, 0.0]], dtype=F64)
    mask = torch.tensor([[1, 1], [0, 0], [1, 0]])
    # R = 2 (row 1 is empty): sum 6 / 2 = 3; token mean of rows (1.5, 3) -> 2.25; sum-norm 6 / (2·2) = 1.5.
    assert aggregate(values, mask, loss_agg="seq-mean-token-sum").item() == 3.0
    assert aggregate(values, mask, loss_agg="seq-mean-token-mean").item() == 2.25
    assert aggregate(values, mask, loss_agg="seq-mean-token-sum-norm").item() == 1.5
    assert aggregate(values, mask, loss_agg="token-mean").item() == 2.0


def test_aggregate_errors() -> None:
    with pytest.raises(ValueError, match="loss_agg: unknown mode 'mean'"):
        aggregate(torch.zeros(1, 1), torch.ones(1, 1), loss_agg="mean")
    with pytest.raises(ValueError, match="values and mask must both be"):
        aggregate(torch.zeros(2), torch.ones(2))


def _pieces_batch():
    g = torch.Generator().manual_seed(7)
    B, T = 7, 6
    old = -torch.rand(B, T, generator=g, dtype=F64) * 2
    logprobs = old + 0.5 * torch.randn(B, T, generator=g, dtype=F64)
    adv = torch.randn(B, generator=g, dtype=F64)
    mask = torch.rand(B, T, generator=g) > 0.3
    mask[4] = False  # an all-padding row; the piece [4:5] has no valid token at all
    return logprobs, old, adv, mask


@pytest.mark.parametrize("agg", AGGS)
def test_weighted_pieces_sum_to_the_whole(agg: str) -> None:
    logprobs, old, adv, mask = _pieces_batch()
    kw = {"norm_len": 6} if agg == "seq-mean-token-sum-norm" else {}
    whole_lp = logprobs.clone().requires_grad_()
    whole, _ = compute_policy_loss("gppo", whole_lp, old, adv, mask, loss_agg=agg, **kw)
    whole.backward()

    total_tokens, total_rows = int(mask.sum()), int((mask.sum(1) > 0).sum())
    piece_lp = logprobs.clone().requires_grad_()
    summed = torch.zeros((), dtype=F64)
    for sl in (slice(0, 3), slice(3, 4), slice(4, 5), slice(5, 7)):
        piece, _ = compute_policy_loss("gppo", piece_lp[sl], old[sl], adv[sl], mask[sl], loss_agg=agg, **kw)
        weight = aggregation_weight(agg, mask[sl], total_tokens=total_tokens, total_rows=total_rows)
        summed = summed + weight * piece
    summed.backward()
    assert_close(summed, whole.detach())
    assert_close(piece_lp.grad, whole_lp.grad)


def test_weights_are_shares_of_tokens_or_rows() -> None:
    mask = torch.tensor([[1, 1, 0], [0, 0, 0], [1, 0, 0]])
    # 3 of 12 tokens; 2 of 5 non-empty rows.
    assert aggregation_weight("token-mean", mask, total_tokens=12, total_rows=5) == 0.25
    assert aggregation_weight("seq-mean-token-mean", mask, total_tokens=12, total_rows=5) == 0.4


def test_weight_errors() -> None:
    mask = torch.ones(2, 2)
    with pytest.raises(ValueError, match="loss_agg: unknown mode"):
        aggregation_weight("mean", mask, total_tokens=4, total_rows=2)
    with pytest.raises(ValueError, match="piece has 4 valid tokens, more than the mini-batch total 3"):
        aggregation_weight("token-mean", mask, total_tokens=3, total_rows=2)
    assert aggregation_weight("token-mean", torch.zeros(2, 2), total_tokens=0, total_rows=0) == 0.0
