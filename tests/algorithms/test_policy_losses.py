"""Per-loss values and gradients: algorithms.md section 3 worked examples and region tables."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from rlkit.algorithms import POLICY_LOSSES, compute_policy_loss

F64 = torch.float64
LOSSES = ("ppo_clip", "dapo", "gppo", "ce_gppo", "aspo")
AGGS = ("token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm")

# Section 3.5: old probs [0.5, 0.2, 0.9], new probs [0.7, 0.1, 0.9] -> r = [1.4, 0.5, 1.0]; token-mean over 3.
# ppo_clip A=+1: token 0 clipped at 1.2 -> [-1.2, -0.5, -1.0], mean -0.9; grad [0, -0.5, -1.0]/3.
# ppo_clip A=-1: r=0.5 < 0.8 clipped -> [1.4, 0.8, 1.0], mean 1.066667; grad [1.4, 0, 1.0]/3.
# gppo A=+1 (eps_h 0.28): [-1.28, -0.5, -1.0] mean -0.926667; grad [-1.28, -0.5, -1.0]/3.
# gppo A=-1: [1.4, 0.8, 1.0] mean 1.066667; grad [1.4, 0.8, 1.0]/3.
# aspo A=+1: [-1/1.2, -1/0.5, -1/1] = [-0.833333, -2, -1] mean -1.277778; grad [0, -2, -1]/3.
# aspo A=-1: same as ppo_clip.
WORKED = [
    ("ppo_clip", 1.0, -0.9, [0.0, -0.166667, -0.333333]),
    ("ppo_clip", -1.0, 1.066667, [0.466667, 0.0, 0.333333]),
    ("gppo", 1.0, -0.926667, [-0.426667, -0.166667, -0.333333]),
    ("gppo", -1.0, 1.066667, [0.466667, 0.266667, 0.333333]),
    ("aspo", 1.0, -1.277778, [0.0, -0.666667, -0.333333]),
    ("aspo", -1.0, 1.066667, [0.466667, 0.0, 0.333333]),
]


@pytest.mark.parametrize(("name", "A", "loss_value", "grad"), WORKED)
def test_worked_example_three_tokens(name: str, A: float, loss_value: float, grad: list[float]) -> None:
    old = torch.tensor([[0.5, 0.2, 0.9]], dtype=F64).log()
    logprobs = torch.tensor([[0.7, 0.1, 0.9]], dtype=F64).log().requires_grad_()
    loss, metrics = compute_policy_loss(name, logprobs, old, torch.tensor([A], dtype=F64), torch.ones(1, 3))
    loss.backward()
    assert_close(loss, torch.tensor(loss_value, dtype=F64), atol=1e-6, rtol=0)
    assert_close(logprobs.grad, torch.tensor([grad], dtype=F64), atol=1e-6, rtol=0)
    assert metrics["clip_frac"] == pytest.approx(1 / 3)


# Section 3.5 single tokens (value, gradient):
SINGLE = [
    # A=-1, r=4, c=3: dual clip -> ℓ = -c·A = 3; hard clip gives g = 0, ASPO's soft clip g = -c·A = 3.
    ("ppo_clip", -1.0, 4.0, {"dual_clip": 3.0}, 3.0, 0.0),
    ("gppo", -1.0, 4.0, {"dual_clip": 3.0}, 3.0, 0.0),
    ("ce_gppo", -1.0, 4.0, {"dual_clip": 3.0}, 3.0, 0.0),
    ("aspo", -1.0, 4.0, {}, 3.0, 3.0),
    # A=+1, r=0.2 < 1/c: aspo soft dual ℓ = g = -3; ppo_clip unclipped ℓ = g = -r·A = -0.2.
    ("aspo", 1.0, 0.2, {}, -3.0, -3.0),
    ("ppo_clip", 1.0, 0.2, {}, -0.2, -0.2),
    # ce_gppo defaults: A=-1, r=0.5 -> -β1·(1-ε_l)·A = 0.75·0.8 = 0.6; A=+1, r=1.5 -> -β2·(1+ε_h) = -1.2.
    ("ce_gppo", -1.0, 0.5, {}, 0.6, 0.6),
    ("ce_gppo", 1.0, 1.5, {}, -1.2, -1.2),
    # aspo A=+1, r=0.7 (inside [1/3, 1.2]) -> -A/r = -1.428571.
    ("aspo", 1.0, 0.7, {}, -1.428571, -1.428571),
]


@pytest.mark.parametrize(("name", "A", "r", "params", "value", "grad"), SINGLE)
def test_worked_example_single_tokens(single_token, name, A, r, params, value, grad) -> None:
    got_value, got_grad, _ = single_token(name, A=A, r=r, **params)
    assert got_value == pytest.approx(value, abs=1e-6)
    assert got_grad == pytest.approx(grad, abs=1e-6)


# Region tables of sections 3.1-3.4 with |A| = 2 (value ℓ, gradient g = ∂ℓ/∂logprob).
REGIONS = [
    # ppo_clip, ε 0.2/0.2
    ("ppo_clip", 2.0, 1.1, {}, -2.2, -2.2),  # A>0, r ≤ 1+ε_h: -r·A
    ("ppo_clip", 2.0, 0.5, {}, -1.0, -1.0),  # A>0, small r is not clipped
    ("ppo_clip", 2.0, 1.5, {}, -2.4, 0.0),  # A>0, r > 1.2: -(1.2)·2, no gradient
    ("ppo_clip", -2.0, 0.5, {}, 1.6, 0.0),  # A<0, r < 0.8: -(0.8)·(-2)
    ("ppo_clip", -2.0, 1.5, {"dual_clip": 3.0}, 3.0, 3.0),  # A<0, 0.8 ≤ r ≤ c: -r·A
    ("ppo_clip", -2.0, 4.0, {"dual_clip": 3.0}, 6.0, 0.0),  # A<0, r > c: -c·A
    ("ppo_clip", -2.0, 4.0, {}, 8.0, 8.0),  # no dual clip by default
    ("ppo_clip", 0.0, 4.0, {}, 0.0, 0.0),  # A = 0
    # dapo, ε_h 0.28
    ("dapo", 2.0, 1.25, {}, -2.5, -2.5),  # 1.25 ≤ 1.28: unclipped
    ("dapo", 2.0, 1.5, {}, -2.56, 0.0),  # -(1.28)·2
    # gppo, ε 0.2/0.28: clipped tokens keep the boundary gradient
    ("gppo", 2.0, 1.1, {}, -2.2, -2.2),
    ("gppo", 2.0, 1.5, {}, -2.56, -2.56),  # -(1+ε_h)·A both
    ("gppo", -2.0, 0.5, {}, 1.6, 1.6),  # -(1-ε_l)·A both
    ("gppo", -2.0, 1.5, {"dual_clip": 3.0}, 3.0, 3.0),
    ("gppo", -2.0, 4.0, {"dual_clip": 3.0}, 6.0, 0.0),
    ("gppo", 0.0, 0.5, {}, 0.0, 0.0),
    # ce_gppo, ε 0.2/0.2, β1 0.75, β2 1
    ("ce_gppo", 2.0, 1.5, {}, -2.4, -2.4),  # -β2·1.2·2
    ("ce_gppo", 2.0, 1.5, {"beta2": 0.5}, -1.2, -1.2),  # -0.5·1.2·2
    ("ce_gppo", -2.0, 0.5, {}, 1.2, 1.2),  # -0.75·0.8·(-2)
    ("ce_gppo", -2.0, 0.5, {"beta1": 1.0}, 1.6, 1.6),  # β1 = 1: gppo
    ("ce_gppo", 2.0, 1.1, {}, -2.2, -2.2),
    ("ce_gppo", -2.0, 1.5, {}, 3.0, 3.0),
    ("ce_gppo", -2.0, 4.0, {"dual_clip": 3.0}, 6.0, 0.0),
    # aspo, ε 0.2/0.2, c 3
    ("aspo", 2.0, 1.5, {}, -2 / 1.2, 0.0),  # A>0, r > 1.2: -A/(1+ε_h)
    ("aspo", 2.0, 0.5, {}, -4.0, -4.0),  # A>0, 1/3 ≤ r ≤ 1.2: -A/r
    ("aspo", 2.0, 0.2, {}, -6.0, -6.0),  # A>0, r < 1/3: -c·A
    ("aspo", 2.0, 0.2, {"dual_clip": None}, -10.0, -10.0),  # no cap: -A/r
    ("aspo", -2.0, 0.5, {}, 1.6, 0.0),  # A<0, r < 0.8: -(1-ε_l)·A
    ("aspo", -2.0, 1.5, {}, 3.0, 3.0),  # A<0, 0.8 ≤ r ≤ c: -r·A
    ("aspo", -2.0, 4.0, {}, 6.0, 6.0),  # A<0, r > c: -c·A, gradient kept
    ("aspo", -2.0, 4.0, {"dual_clip": None}, 8.0, 8.0),
    ("aspo", 0.0, 0.2, {}, 0.0, 0.0),
]


@pytest.mark.parametrize(("name", "A", "r", "params", "value", "grad"), REGIONS)
def test_region_values_and_gradients(single_token, name, A, r, params, value, grad) -> None:
    got_value, got_grad, _ = single_token(name, A=A, r=r, **params)
    assert got_value == pytest.approx(value, abs=1e-9)
    assert got_grad == pytest.approx(grad, abs=1e-9)


@pytest.mark.parametrize(
    ("name", "A", "r", "params", "low", "high", "dual"),
    [
        ("ppo_clip", 2.0, 1.5, {}, 0.0, 1.0, 0.0),
        ("ppo_clip", -2.0, 0.5, {}, 1.0, 0.0, 0.0),
        ("ppo_clip", -2.0, 4.0, {"dual_clip": 3.0}, 0.0, 0.0, 1.0),
        ("gppo", 2.0, 1.5, {}, 0.0, 1.0, 0.0),
        ("aspo", 2.0, 0.2, {}, 0.0, 0.0, 1.0),  # soft dual on the positive side
        ("aspo", -2.0, 4.0, {}, 0.0, 0.0, 1.0),
        ("ce_gppo", 2.0, 1.1, {}, 0.0, 0.0, 0.0),
    ],
)
def test_clip_metrics_per_region(single_token, name, A, r, params, low, high, dual) -> None:
    _, _, metrics = single_token(name, A=A, r=r, **params)
    assert (metrics["clip_frac_low"], metrics["clip_frac_high"], metrics["dual_clip_frac"]) == (low, high, dual)
    assert metrics["clip_frac"] == low + high  # dual-clipped tokens are not in the clip zone
    assert metrics["ratio_mean"] == pytest.approx(r) and metrics["ratio_max"] == pytest.approx(r)


def test_metrics_over_valid_tokens_only() -> None:
    # valid ratios 1.4 and 0.5 (token (0,2) is padding with garbage ratio e^5).
    old = torch.tensor([[0.5, 0.2, 0.001]], dtype=F64).log()
    logprobs = torch.tensor([[0.7, 0.1, 0.148]], dtype=F64).log()
    entropy, old_entropy = torch.tensor([[1.0, 3.0, 50.0]], dtype=F64), torch.ones(1, 3, dtype=F64)
    _, m = compute_policy_loss(
        "ppo_clip",
        logprobs,
        old,
        torch.tensor([1.0]),
        torch.tensor([[1, 1, 0]]),
        entropy=entropy,
        old_entropy=old_entropy,
        erc=(0.95, 1.05),
    )
    assert m["ratio_mean"] == pytest.approx(0.95) and m["ratio_max"] == pytest.approx(1.4)
    assert m["approx_kl"] == pytest.approx(-(torch.tensor([1.4, 0.5]).log().mean().item()))
    assert m["clip_frac"] == pytest.approx(0.5)  # 1.4 > 1.2 with A > 0
    assert m["entropy_mean"] == pytest.approx(2.0) and m["erc_frac"] == pytest.approx(0.5)
    assert all(type(v) is float for v in m.values())


def test_advantages_per_token_equal_broadcast() -> None:
    g = torch.Generator().manual_seed(0)
    logprobs = -torch.rand(3, 4, generator=g, dtype=F64)
    old = logprobs + 0.3 * torch.randn(3, 4, generator=g, dtype=F64)
    adv = torch.randn(3, generator=g, dtype=F64)
    mask = torch.rand(3, 4, generator=g) > 0.3
    for name in LOSSES:
        a, _ = compute_policy_loss(name, logprobs, old, adv, mask)
        b, _ = compute_policy_loss(name, logprobs, old, adv[:, None].expand(3, 4).clone(), mask.double())
        assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_kept_and_inputs_untouched(name: str, dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(1)
    logprobs = (-torch.rand(2, 3, generator=g)).to(dtype).requires_grad_()
    old = (-torch.rand(2, 3, generator=g)).to(dtype)
    adv, mask = torch.tensor([1.5, -0.5], dtype=dtype), torch.tensor([[1, 1, 0], [1, 0, 0]], dtype=dtype)
    ent, old_ent = torch.full((2, 3), 2.0, dtype=dtype), torch.full((2, 3), 2.0, dtype=dtype)
    before = [t.detach().clone() for t in (logprobs, old, adv, mask, ent, old_ent)]
    loss, _ = compute_policy_loss(name, logprobs, old, adv, mask, entropy=ent, old_entropy=old_ent, erc=(0.9, 1.1))
    loss.backward()
    assert loss.dtype == dtype and loss.dim() == 0 and logprobs.grad.dtype == dtype
    for b, a in zip(before, (logprobs, old, adv, mask, ent, old_ent)):
        assert torch.equal(b, a.detach())
    assert POLICY_LOSSES.defaults(name)  # every built-in loss has typed keyword parameters


def test_no_gradient_into_constants() -> None:
    logprobs = torch.tensor([[-0.5, -1.0]], dtype=F64, requires_grad=True)
    old = torch.tensor([[-0.6, -0.9]], dtype=F64, requires_grad=True)
    adv = torch.tensor([1.0], dtype=F64, requires_grad=True)
    ent = torch.ones(1, 2, dtype=F64, requires_grad=True)
    loss, _ = compute_policy_loss(
        "gppo", logprobs, old, adv, torch.ones(1, 2), entropy=ent, old_entropy=ent, erc=(0.9, 1.1)
    )
    loss.backward()
    assert logprobs.grad is not None
    assert old.grad is None and adv.grad is None and ent.grad is None
