"""Entropy-ratio clipping (algorithms.md section 4): value kept, gradient 0, denominators unchanged."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from rlkit.algorithms import compute_policy_loss

F64 = torch.float64
LOSSES = ("ppo_clip", "dapo", "gppo", "ce_gppo", "aspo")


def _section5(rho_01: float, **kw):
    """Section 5's example (on-policy ppo_clip, A=[2,-1], mask [[1,1,0],[1,0,0]]) with ρ of token (0,1) set."""
    logprobs = torch.tensor([[-0.3, -1.2, -2.0], [-0.8, -1.0, -1.0]], dtype=F64, requires_grad=True)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    old_entropy = torch.full((2, 3), 2.0, dtype=F64)
    entropy = old_entropy.clone()
    entropy[0, 1] = 2.0 * rho_01
    loss, metrics = compute_policy_loss(
        "ppo_clip",
        logprobs,
        logprobs.detach(),
        torch.tensor([2.0, -1.0], dtype=F64),
        mask,
        entropy=entropy,
        old_entropy=old_entropy,
        **kw,
    )
    loss.backward()
    return loss, logprobs.grad, metrics


def test_section4_example_token_outside_band() -> None:
    # ρ(0,1) = 1.10 ∉ (0.95, 1.05): loss stays -1 (= -3/3, denominator still 3), its gradient becomes 0.
    loss, grad, metrics = _section5(1.10, erc=(0.95, 1.05))
    assert loss.item() == pytest.approx(-1.0, abs=1e-12)
    assert_close(grad, torch.tensor([[-2 / 3, 0.0, 0.0], [1 / 3, 0.0, 0.0]], dtype=F64))
    assert metrics["erc_frac"] == pytest.approx(1 / 3)
    assert metrics["clip_frac"] == 0.0


def test_inside_band_is_unchanged() -> None:
    # ρ = 1.02 inside the band: identical to no ERC.
    with_erc = _section5(1.02, erc=(0.95, 1.05))
    without = _section5(1.02)
    assert_close(with_erc[0], without[0])
    assert_close(with_erc[1], without[1])
    assert with_erc[2]["erc_frac"] == 0.0 and "erc_frac" not in without[2]


def test_band_is_open_and_uses_eps() -> None:
    # ρ = (H + 1e-8)/(H_old + 1e-8). Token 0: H = H_old = 0 -> ρ = 1, inside.
    # Tokens 1 and 2 sit exactly on the lower / upper bound -> outside (the band is open).
    lo, hi = (0.5 + 1e-8) / (1.0 + 1e-8), (3.0 + 1e-8) / (2.0 + 1e-8)
    logprobs = torch.zeros(1, 3, dtype=F64, requires_grad=True)
    entropy = torch.tensor([[0.0, 0.5, 3.0]], dtype=F64)
    old_entropy = torch.tensor([[0.0, 1.0, 2.0]], dtype=F64)
    loss, metrics = compute_policy_loss(
        "gppo",
        logprobs,
        logprobs.detach(),
        torch.ones(1, dtype=F64),
        torch.ones(1, 3),
        entropy=entropy,
        old_entropy=old_entropy,
        erc=(lo, hi),
    )
    loss.backward()
    assert loss.item() == -1.0
    assert_close(logprobs.grad, torch.tensor([[-1 / 3, 0.0, 0.0]], dtype=F64))
    assert metrics["erc_frac"] == pytest.approx(2 / 3)


@pytest.mark.parametrize("name", LOSSES)
def test_erc_composes_with_every_loss(name: str) -> None:
    g = torch.Generator().manual_seed(11)
    old = -torch.rand(3, 5, generator=g, dtype=F64)
    logprobs = (old + 0.5 * torch.randn(3, 5, generator=g, dtype=F64)).requires_grad_()
    adv = torch.randn(3, generator=g, dtype=F64)
    mask = torch.rand(3, 5, generator=g) > 0.2
    old_entropy = torch.rand(3, 5, generator=g, dtype=F64) + 0.5
    entropy = old_entropy * torch.where(torch.rand(3, 5, generator=g) > 0.5, 1.2, 1.01).to(F64)
    outside = mask & (entropy / old_entropy > 1.05)
    plain, _ = compute_policy_loss(name, logprobs, old, adv, mask)
    (plain_grad,) = torch.autograd.grad(plain, logprobs)
    gated, metrics = compute_policy_loss(
        name, logprobs, old, adv, mask, entropy=entropy, old_entropy=old_entropy, erc=(0.95, 1.05)
    )
    (gated_grad,) = torch.autograd.grad(gated, logprobs)
    assert outside.any() and (mask & ~outside).any()
    assert_close(gated, plain)
    assert (gated_grad[outside] == 0).all()
    assert_close(gated_grad[~outside], plain_grad[~outside])
    assert metrics["erc_frac"] == pytest.approx(outside.sum().item() / mask.sum().item())
