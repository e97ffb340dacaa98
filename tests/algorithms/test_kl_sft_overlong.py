"""KL estimators and the SFT term (algorithms.md section 7), overlong shaping and filtering (section 9)."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from rlkit.algorithms import aggregate, filter_truncated, kl_penalty, overlong_penalty, sft_loss

F64 = torch.float64


# logprob -1, ref -1.5, x = ref - logprob = -0.5:
# k1 = -x = 0.5 (g 1); k2 = x²/2 = 0.125 (g -x = 0.5); k3 = e^-0.5 + 0.5 - 1 = 0.106531 (g 1 - e^-0.5 = 0.393469).
@pytest.mark.parametrize(("kind", "value", "grad"), [("k1", 0.5, 1.0), ("k2", 0.125, 0.5), ("k3", 0.106531, 0.393469)])
def test_kl_example(kind: str, value: float, grad: float) -> None:
    logprobs = torch.tensor([[-1.0]], dtype=F64, requires_grad=True)
    kl = kl_penalty(logprobs, torch.tensor([[-1.5]], dtype=F64), kind)
    kl.sum().backward()
    assert kl.dtype == F64 and kl.shape == (1, 1)
    assert kl.item() == pytest.approx(value, abs=1e-6)
    assert logprobs.grad.item() == pytest.approx(grad, abs=1e-6)


def test_kl_is_not_clamped_and_ref_is_constant() -> None:
    # x = 20: k3 = e^20 - 21 (verl would clamp to 10).
    logprobs = torch.tensor([[-25.0]], dtype=F64, requires_grad=True)
    ref = torch.tensor([[-5.0]], dtype=F64, requires_grad=True)
    kl = kl_penalty(logprobs, ref, "k3")
    kl.sum().backward()
    assert kl.item() == pytest.approx(torch.tensor(20.0, dtype=F64).exp().item() - 21)
    assert ref.grad is None


def test_kl_mask_ignores_garbage_and_aggregates() -> None:
    logprobs = torch.tensor([[-1.0, 1e30], [-2.0, -1.0]], dtype=F64, requires_grad=True)
    ref = torch.tensor([[-1.5, -1e30], [-2.0, 500.0]], dtype=F64)
    mask = torch.tensor([[1, 0], [1, 0]])
    kl = kl_penalty(logprobs, ref, "k3", mask=mask)
    loss = 0.001 * aggregate(kl, mask, loss_agg="token-mean")
    loss.backward()
    assert torch.isfinite(logprobs.grad).all() and logprobs.grad[0, 1] == 0 and logprobs.grad[1, 1] == 0
    # token-mean of [0.106531, 0] times the coefficient.
    assert loss.item() == pytest.approx(0.001 * 0.106531 / 2, abs=1e-9)


def test_kl_errors() -> None:
    x = torch.zeros(1, 1)
    with pytest.raises(ValueError, match="unknown KL kind 'k4'; known: k1, k2, k3"):
        kl_penalty(x, x, "k4")
    with pytest.raises(ValueError, match="ref_logprobs shape"):
        kl_penalty(x, torch.zeros(1, 2), "k1")


# Rows: 0 selected (tokens -1, -2), 1 not selected, 2 selected (tokens -4, -5, -6); padding holds garbage.
# token-mean: (1+2+4+5+6)/5 = 3.6, gradient -1/5 per selected token.
# seq-mean-token-mean: ((1+2)/2 + (4+5+6)/3)/2 = (1.5 + 5)/2 = 3.25.
# seq-mean-token-sum: (3 + 15)/2 = 9.
def _sft(**kw):
    logprobs = torch.tensor([[-1.0, -2.0, 1e30], [-3.0, 9.0, 9.0], [-4.0, -5.0, -6.0]], dtype=F64, requires_grad=True)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0], [1, 1, 1]])
    loss = sft_loss(logprobs, mask, select=torch.tensor([True, False, True]), **kw)
    loss.backward()
    return loss, logprobs.grad


@pytest.mark.parametrize(
    ("agg", "expected"), [("token-mean", 3.6), ("seq-mean-token-mean", 3.25), ("seq-mean-token-sum", 9.0)]
)
def test_sft_loss_values(agg: str, expected: float) -> None:
    loss, _ = _sft(loss_agg=agg)
    assert loss.item() == pytest.approx(expected)


def test_sft_loss_gradient_only_on_selected_valid_tokens() -> None:
    _, grad = _sft()
    assert_close(grad, torch.tensor([[-0.2, -0.2, 0.0], [0.0, 0.0, 0.0], [-0.2, -0.2, -0.2]], dtype=F64))


def test_sft_loss_without_selected_rows_is_zero_with_grad() -> None:
    logprobs = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    loss = sft_loss(logprobs, torch.ones(1, 2), select=torch.tensor([False]))
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.equal(logprobs.grad, torch.zeros(1, 2))
    with pytest.raises(ValueError, match="select must be a bool tensor of shape \\[1\\]"):
        sft_loss(logprobs, torch.ones(1, 2), select=torch.tensor([1]))


# DAPO: L_max 20480, L_cache 4096, soft zone (16384, 20480]: (16384 - L)/4096.
# 18432 -> -0.5; 16384 -> 0; 20480 -> -1; 20481 -> -1 (hard). RLEP: 3072/512, 2816 -> (2560-2816)/512 = -0.5.
@pytest.mark.parametrize(
    ("max_len", "cache_len", "factor", "lengths", "expected"),
    [
        (20480, 4096, 1.0, [18432, 16384, 100, 20480, 20481, 16385], [-0.5, 0.0, 0.0, -1.0, -1.0, -1 / 4096]),
        (20480, 4096, 0.5, [18432, 30000], [-0.25, -0.5]),
        (3072, 512, 1.0, [2816, 2560, 3073], [-0.5, 0.0, -1.0]),
        (8, 0, 1.0, [8, 9], [0.0, -1.0]),
    ],
)
def test_overlong_penalty(max_len, cache_len, factor, lengths, expected) -> None:
    got = overlong_penalty(torch.tensor(lengths), max_len=max_len, cache_len=cache_len, factor=factor)
    assert got.dtype == torch.float32
    assert_close(got, torch.tensor(expected))
    assert overlong_penalty(torch.tensor([18432.0], dtype=F64), max_len=max_len, cache_len=cache_len).dtype == F64


def test_overlong_errors_and_filter() -> None:
    with pytest.raises(ValueError, match="0 <= cache_len <= max_len"):
        overlong_penalty(torch.tensor([1]), max_len=10, cache_len=11)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    filtered = filter_truncated(mask, torch.tensor([False, True]))
    assert torch.equal(filtered, torch.tensor([[1, 1, 0], [0, 0, 0]]))
    assert torch.equal(mask, torch.tensor([[1, 1, 0], [1, 1, 1]]))
