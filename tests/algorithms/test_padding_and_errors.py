"""Padding garbage, all-padding batches, and the errors of algorithms.md section 0."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from rlkit.algorithms import ParameterError, compute_policy_loss

F64 = torch.float64
LOSSES = ("ppo_clip", "dapo", "gppo", "ce_gppo", "aspo")
AGGS = ("token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm")


def _batch(seed: int):
    g = torch.Generator().manual_seed(seed)
    B, T = 4, 5
    logprobs = -torch.rand(B, T, generator=g, dtype=F64) * 2
    old = logprobs + 0.4 * torch.randn(B, T, generator=g, dtype=F64)
    adv = torch.randn(B, T, generator=g, dtype=F64)
    mask = torch.rand(B, T, generator=g) > 0.4
    mask[2] = False  # one row with no valid token
    mask[0, 0] = True
    ent = torch.rand(B, T, generator=g, dtype=F64) + 0.5
    old_ent = ent * (1 + 0.1 * torch.randn(B, T, generator=g, dtype=F64))
    return logprobs, old, adv, mask, ent, old_ent


def _run(name, logprobs, old, adv, mask, ent, old_ent, agg):
    lp = logprobs.clone().requires_grad_()
    loss, metrics = compute_policy_loss(
        name, lp, old, adv, mask, loss_agg=agg, entropy=ent, old_entropy=old_ent, erc=(0.95, 1.05), dual_clip=3.0
    )
    (grad,) = torch.autograd.grad(loss, lp)
    return loss, grad, metrics


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("agg", AGGS)
def test_masked_garbage_changes_nothing(name: str, agg: str) -> None:
    logprobs, old, adv, mask, ent, old_ent = _batch(0)
    clean = _run(name, logprobs, old, adv, mask, ent, old_ent, agg)
    pad = ~mask
    huge = torch.tensor(1e30, dtype=F64)
    dirty = [
        torch.where(pad, huge, t) if i % 2 == 0 else torch.where(pad, -huge, t)
        for i, t in enumerate((logprobs, old, adv, ent, old_ent))
    ]
    got = _run(name, dirty[0], dirty[1], dirty[2], mask, dirty[3], dirty[4], agg)
    assert torch.isfinite(got[0]) and torch.isfinite(got[1]).all()
    assert_close(got[0], clean[0], rtol=0, atol=0)
    assert_close(got[1], clean[1], rtol=0, atol=0)
    assert (got[1][pad] == 0).all()
    assert got[2] == clean[2]


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("agg", AGGS)
def test_all_padding_gives_exact_zero_that_backpropagates(name: str, agg: str) -> None:
    logprobs = torch.full((2, 3), 1e30, dtype=F64, requires_grad=True)
    old = torch.full((2, 3), -1e30, dtype=F64)
    loss, metrics = compute_policy_loss(
        name, logprobs, old, torch.tensor([1e30, -1e30], dtype=F64), torch.zeros(2, 3), loss_agg=agg
    )
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.equal(logprobs.grad, torch.zeros(2, 3, dtype=F64))
    assert metrics["clip_frac"] == 0.0 and metrics["ratio_mean"] == 0.0


@pytest.mark.parametrize("name", LOSSES)
def test_extreme_valid_ratios_give_finite_gradients(name: str) -> None:
    # log-ratios of ±200 overflow exp in float32; discarded regions must not turn into 0·inf = NaN.
    logprobs = torch.tensor([[-0.1, -150.0, -0.1, -150.0]], dtype=torch.float32, requires_grad=True)
    old = torch.tensor([[-200.0, -0.1, -200.0, -0.1]], dtype=torch.float32)
    adv = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    loss, _ = compute_policy_loss(name, logprobs, old, adv, torch.ones(1, 4), dual_clip=3.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logprobs.grad).all()


def _args():
    lp = torch.zeros(1, 2, dtype=F64)
    return lp, lp, torch.ones(1, dtype=F64), torch.ones(1, 2)


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (
            lambda: compute_policy_loss("gpo", *_args()),
            ValueError,
            r"unknown loss 'gpo'; known: aspo, ce_gppo, dapo, gppo, ppo_clip",
        ),
        (
            lambda: compute_policy_loss("gppo", *_args(), clip_hgh=0.3),
            TypeError,
            r"clip_hgh: unknown parameter for loss 'gppo'; accepted: clip_low, clip_high, dual_clip",
        ),
        (
            lambda: compute_policy_loss("gppo", *_args(), beta1=0.5),
            ValueError,
            r"beta1: unknown parameter for loss 'gppo'",
        ),
        (
            lambda: compute_policy_loss("dapo", *_args(), beta2=0.5),
            ValueError,
            r"beta2: unknown parameter for loss 'dapo'",
        ),
        (
            lambda: compute_policy_loss("ppo_clip", *_args(), norm_len=4),
            ValueError,
            r"norm_len: only applies to loss_agg 'seq-mean-token-sum-norm'",
        ),
        (
            lambda: compute_policy_loss("ppo_clip", *_args(), loss_agg="seq-mean-token-sum-norm", norm_len=0),
            ValueError,
            r"norm_len: must be an int >= 1",
        ),
        (
            lambda: compute_policy_loss("ppo_clip", *_args(), loss_agg="sum"),
            ValueError,
            r"loss_agg: unknown mode 'sum'; known: token-mean",
        ),
        (lambda: compute_policy_loss("ppo_clip", *_args(), dual_clip=1.0), ValueError, r"dual_clip: must be > 1"),
        (lambda: compute_policy_loss("aspo", *_args(), dual_clip=0.5), ValueError, r"dual_clip: must be > 1"),
        (lambda: compute_policy_loss("gppo", *_args(), clip_low=1.0), ValueError, r"clip_low: must be in \[0, 1\)"),
        (lambda: compute_policy_loss("ce_gppo", *_args(), beta1=-1.0), ValueError, r"beta1: must be >= 0"),
        (
            lambda: compute_policy_loss("gppo", *_args(), clip_high="0.3"),
            TypeError,
            r"clip_high: expected float, got str",
        ),
        (
            lambda: compute_policy_loss("gppo", *_args(), erc=(0.95, 1.05)),
            ValueError,
            r"erc: needs both entropy and old_entropy",
        ),
        (
            lambda: compute_policy_loss("gppo", *_args(), erc=(1.0, 1.05)),
            ValueError,
            r"erc: band must satisfy 0 < low < 1 < high",
        ),
        (lambda: compute_policy_loss("gppo", *_args(), erc=0.95), ValueError, r"erc: must be a \(low, high\) pair"),
        (
            lambda: compute_policy_loss("gppo", torch.zeros(2), *_args()[1:]),
            ValueError,
            r"logprobs must be a floating \[B, T\] tensor",
        ),
        (
            lambda: compute_policy_loss("gppo", *_args()[:2], torch.ones(3), torch.ones(1, 2)),
            ValueError,
            r"advantages must be \[B\] or \[B, T\]",
        ),
        (
            lambda: compute_policy_loss("gppo", *_args()[:3], torch.ones(1, 3)),
            ValueError,
            r"mask must have the shape of logprobs",
        ),
        (
            lambda: compute_policy_loss("gppo", *_args()[:3], None),
            ValueError,
            r"mask must have the shape of logprobs \(1, 2\), got NoneType",
        ),
    ],
)
def test_errors_name_the_bad_argument(call, exc, match) -> None:
    with pytest.raises(exc, match=match):
        call()


def test_parameter_error_is_value_and_type_error() -> None:
    err = ParameterError("clip_hgh", "unknown")
    assert isinstance(err, ValueError) and isinstance(err, TypeError)
    assert (err.param, err.problem, str(err)) == ("clip_hgh", "unknown", "clip_hgh: unknown")
