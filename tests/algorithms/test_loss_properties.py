"""Property tests on random inputs, against an independent per-token reference of the tables."""

from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

from rlkit.algorithms import aggregate, compute_policy_loss

F64 = torch.float64
LOSSES = ("ppo_clip", "dapo", "gppo", "ce_gppo", "aspo")
AGGS = ("token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm")


def _random(seed: int, B: int = 6, T: int = 10, spread: float = 0.6):
    g = torch.Generator().manual_seed(seed)
    old = -torch.rand(B, T, generator=g, dtype=F64) * 3
    logprobs = old + spread * torch.randn(B, T, generator=g, dtype=F64)
    adv = torch.randn(B, T, generator=g, dtype=F64)
    adv[0, :2] = 0.0
    mask = torch.rand(B, T, generator=g) > 0.25
    mask[-1] = False
    return logprobs, old, adv, mask


def _loss_and_grad(name, logprobs, old, adv, mask, **kw):
    lp = logprobs.clone().requires_grad_()
    loss, metrics = compute_policy_loss(name, lp, old, adv, mask, **kw)
    (grad,) = torch.autograd.grad(loss, lp)
    return loss, grad, metrics


def _token_weights(mask: torch.Tensor, agg: str) -> torch.Tensor:
    """∂loss/∂ℓ_bt of section 5 (w), computed by autograd through aggregate()."""
    values = torch.zeros(mask.shape, dtype=F64, requires_grad=True)
    (w,) = torch.autograd.grad(aggregate(values, mask, loss_agg=agg), values)
    return w


def _reference(name: str, A: float, r: float, p: dict) -> tuple[float, float]:
    """(ℓ, g) of one token straight from the equations of sections 3.1-3.4 (python floats)."""
    el, eh, c = (
        p.get("clip_low", 0.2),
        p.get("clip_high", {"dapo": 0.28, "gppo": 0.28}.get(name, 0.2)),
        p.get("dual_clip"),
    )
    if name == "aspo":
        c = p.get("dual_clip", 3.0)
    if A == 0:
        return 0.0, 0.0
    if name in ("ppo_clip", "dapo", "gppo", "ce_gppo"):
        value = max(-A * r, -A * min(max(r, 1 - el), 1 + eh))
        grad = -A * r if value == -A * r else 0.0
        if name in ("gppo", "ce_gppo"):
            b1, b2 = (p.get("beta1", 0.75), p.get("beta2", 1.0)) if name == "ce_gppo" else (1.0, 1.0)
            if A > 0 and r > 1 + eh:
                value = grad = -b2 * (1 + eh) * A
            if A < 0 and r < 1 - el:
                value = grad = -b1 * (1 - el) * A
        if c is not None and A < 0 and r > c:
            value, grad = -c * A, 0.0
        return value, grad
    # aspo
    if A > 0:
        if c is not None and r < 1 / c:
            return -c * A, -c * A
        p_ = min(r, 1 + eh)
        return -A / p_, (-A / r if r <= 1 + eh else 0.0)
    if c is not None and r > c:
        return -c * A, -c * A
    q = max(r, 1 - el)
    return -A * q, (-A * r if r >= 1 - el else 0.0)


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("params", [{}, {"dual_clip": 2.0}, {"clip_low": 0.1, "clip_high": 0.3}])
def test_matches_per_token_reference(name: str, params: dict) -> None:
    logprobs, old, adv, mask = _random(3, spread=1.5)
    for agg in AGGS:
        loss, grad, _ = _loss_and_grad(name, logprobs, old, adv, mask, loss_agg=agg, **params)
        w = _token_weights(mask, agg)
        ref_values = torch.zeros_like(logprobs)
        ref_grads = torch.zeros_like(logprobs)
        for b, t in zip(*torch.nonzero(mask, as_tuple=True)):
            r = math.exp(logprobs[b, t].item() - old[b, t].item())
            value, g = _reference(name, adv[b, t].item(), r, params)
            ref_values[b, t], ref_grads[b, t] = value, g
        assert_close(loss, (w * ref_values).sum())
        assert_close(grad, w * ref_grads)


@pytest.mark.parametrize("agg", AGGS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gppo_value_equals_dapo_and_clipped_gradient_saturates(agg: str, seed: int) -> None:
    logprobs, old, adv, mask = _random(seed)
    gppo, g_grad, g_metrics = _loss_and_grad("gppo", logprobs, old, adv, mask, loss_agg=agg, dual_clip=3.0)
    dapo, d_grad, d_metrics = _loss_and_grad("dapo", logprobs, old, adv, mask, loss_agg=agg, dual_clip=3.0)
    assert_close(gppo, dapo)
    assert g_metrics == d_metrics
    r = (logprobs - old).exp()
    high = mask & (adv > 0) & (r > 1.28)
    low = mask & (adv < 0) & (r < 0.8)
    assert high.any() and low.any()
    w = _token_weights(mask, agg)
    assert_close(g_grad[high], (-(1 + 0.28) * adv * w)[high])
    assert_close(g_grad[low], (-(1 - 0.2) * adv * w)[low])
    assert (d_grad[high | low] == 0).all()
    assert_close(g_grad[~(high | low)], d_grad[~(high | low)])


def test_ce_gppo_with_unit_betas_is_gppo() -> None:
    logprobs, old, adv, mask = _random(4)
    a = _loss_and_grad("ce_gppo", logprobs, old, adv, mask, beta1=1.0, beta2=1.0, clip_high=0.28, dual_clip=3.0)
    b = _loss_and_grad("gppo", logprobs, old, adv, mask, dual_clip=3.0)
    assert_close(a[0], b[0])
    assert_close(a[1], b[1])


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("agg", AGGS)
def test_on_policy_every_loss_is_plain_policy_gradient(name: str, agg: str) -> None:
    logprobs, _, adv, mask = _random(5)
    loss, grad, metrics = _loss_and_grad(name, logprobs, logprobs.clone(), adv, mask, loss_agg=agg)
    w = _token_weights(mask, agg)
    assert_close(loss, (w * -adv).sum())
    assert_close(grad, w * -adv)
    assert metrics["clip_frac"] == 0.0 and metrics["ratio_max"] == 1.0


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_repeated_steps_stop_at_the_clip_under_ppo_clip_but_not_under_gppo(sign: float) -> None:
    """Many optimizer steps on one batch (the extreme of later mini-batches/epochs being off-policy).

    ppo_clip zeroes a token's gradient once its ratio leaves [1-ε_l, 1+ε_h], so the sampled tokens'
    ratios stop just past the boundary; gppo keeps the boundary gradient, so nothing but the step size
    bounds how far they move (positive advantage: ratio toward 1/π_old; negative: toward 0). This is
    why GPPO-based losses need a small enough policy step (benchmarks/loss_variants.py, ``--lr``).
    """
    V, T = 8, 4
    tokens = torch.tensor([[1, 3, 5, 7]])
    init = torch.randn(1, T, V, generator=torch.Generator().manual_seed(0), dtype=F64) * 0.3
    old = torch.log_softmax(init, -1).gather(-1, tokens[..., None])[..., 0]
    adv = torch.full((1, T), sign, dtype=F64)
    mask = torch.ones(1, T, dtype=torch.bool)
    final = {}
    for name in ("ppo_clip", "gppo"):
        logits = init.clone().requires_grad_()
        opt = torch.optim.SGD([logits], lr=0.25)
        for _ in range(400):
            lp = torch.log_softmax(logits, -1).gather(-1, tokens[..., None])[..., 0]
            loss, _ = compute_policy_loss(name, lp, old, adv, mask, clip_low=0.2, clip_high=0.28)
            opt.zero_grad()
            loss.backward()
            opt.step()
        final[name] = (lp.detach() - old).exp()[0]
    if sign > 0:
        assert ((final["ppo_clip"] > 1.28) & (final["ppo_clip"] < 1.4)).all(), final["ppo_clip"]  # one step past 1+ε_h
        assert (final["gppo"] > 4.0).all(), final["gppo"]  # π → 1: r → 1/π_old ≈ 8
    else:
        assert ((final["ppo_clip"] < 0.8) & (final["ppo_clip"] > 0.65)).all(), final["ppo_clip"]  # one step past 1-ε_l
        assert (final["gppo"] < 0.05).all(), final["gppo"]  # pushed toward π = 0
