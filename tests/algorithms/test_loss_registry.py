"""Registries: duplicates rejected, unknown names listed, signature rules, user losses end to end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import Tensor

from rlkit.algorithms import (
    ADVANTAGES,
    POLICY_LOSSES,
    TokenLoss,
    compute_advantages,
    compute_policy_loss,
    register_advantage,
    register_policy_loss,
    validate_loss_params,
)

F64 = torch.float64


@pytest.fixture
def scaled_pg() -> Iterator[str]:
    """A user loss ``ℓ = −scale·r·A`` registered for the test, removed afterwards."""

    @register_policy_loss("test_scaled_pg")
    def scaled_pg_loss(logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor, *, scale: float = 1.0) -> TokenLoss:
        if scale <= 0:
            raise ValueError("scale must be > 0")
        return TokenLoss(values=-scale * advantages * torch.exp(logprobs - old_logprobs))

    yield "test_scaled_pg"
    POLICY_LOSSES.unregister("test_scaled_pg")


def test_builtin_names_and_defaults() -> None:
    assert POLICY_LOSSES.names() == ("aspo", "ce_gppo", "dapo", "gppo", "ppo_clip")
    assert ADVANTAGES.names() == ("dr_grpo", "grpo", "reinforce_pp", "rloo")
    assert POLICY_LOSSES.defaults("ppo_clip") == {"clip_low": 0.2, "clip_high": 0.2, "dual_clip": None}
    assert POLICY_LOSSES.defaults("dapo") == {"clip_low": 0.2, "clip_high": 0.28, "dual_clip": None}
    assert POLICY_LOSSES.defaults("gppo") == {"clip_low": 0.2, "clip_high": 0.28, "dual_clip": None}
    assert POLICY_LOSSES.defaults("ce_gppo") == {
        "clip_low": 0.2,
        "clip_high": 0.2,
        "dual_clip": None,
        "beta1": 0.75,
        "beta2": 1.0,
    }
    assert POLICY_LOSSES.defaults("aspo") == {"clip_low": 0.2, "clip_high": 0.2, "dual_clip": 3.0}
    assert ADVANTAGES.defaults("grpo") == {"norm_std": True, "eps": 1e-6}
    assert ADVANTAGES.defaults("reinforce_pp") == {"eps": 1e-6}


def test_user_loss_runs_through_compute_policy_loss(scaled_pg: str) -> None:
    # One token, r = 1, A = 2, scale 3: ℓ = -6, g = -6.
    logprobs = torch.tensor([[-0.5]], dtype=F64, requires_grad=True)
    loss, metrics = compute_policy_loss(
        scaled_pg, logprobs, logprobs.detach(), torch.tensor([2.0], dtype=F64), torch.ones(1, 1), scale=3.0
    )
    loss.backward()
    assert loss.item() == -6.0 and logprobs.grad.item() == -6.0
    assert metrics["clip_frac"] == 0.0 and metrics["dual_clip_frac"] == 0.0
    with pytest.raises(TypeError, match="clip_low: unknown parameter for loss 'test_scaled_pg'; accepted: scale"):
        compute_policy_loss(scaled_pg, logprobs, logprobs, torch.ones(1), torch.ones(1, 1), clip_low=0.1)
    with pytest.raises(ValueError, match="scale must be > 0"):
        validate_loss_params(scaled_pg, {"scale": -1.0})


def test_duplicate_name_rejected(scaled_pg: str) -> None:
    with pytest.raises(ValueError, match="loss 'test_scaled_pg' is already registered"):
        register_policy_loss(scaled_pg)(lambda logprobs, old_logprobs, advantages: TokenLoss(values=logprobs))
    with pytest.raises(ValueError, match="loss 'gppo' is already registered"):
        register_policy_loss("gppo")(lambda logprobs, old_logprobs, advantages: TokenLoss(values=logprobs))
    with pytest.raises(ValueError, match="advantage 'grpo' is already registered"):
        register_advantage("grpo")(lambda rewards, index: rewards)


def test_unknown_name_lists_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown loss 'ppo'; known: aspo, ce_gppo, dapo, gppo, ppo_clip"):
        POLICY_LOSSES.get("ppo")
    with pytest.raises(ValueError, match="unknown loss 'x'"):
        POLICY_LOSSES.unregister("x")


def _kwargs_sink(logprobs, old_logprobs, advantages, **kwargs):
    return TokenLoss(values=logprobs)


def _positional_extra(logprobs, old_logprobs, advantages, clip):
    return TokenLoss(values=logprobs)


def _no_default(logprobs, old_logprobs, advantages, *, clip: float):
    return TokenLoss(values=logprobs)


def _reserved(logprobs, old_logprobs, advantages, *, loss_agg: str = "x"):
    return TokenLoss(values=logprobs)


@pytest.mark.parametrize(
    ("fn", "match"),
    [
        (_kwargs_sink, "parameter 'kwargs' must be keyword-only"),
        (_positional_extra, "must take 3 positional parameters"),
        (_no_default, "keyword parameter 'clip' needs a default"),
        (_reserved, "parameter name 'loss_agg' is reserved"),
    ],
)
def test_signature_rules(fn, match: str) -> None:
    with pytest.raises(TypeError, match=match):
        register_policy_loss("test_bad_signature")(fn)
    assert "test_bad_signature" not in POLICY_LOSSES
    with pytest.raises(ValueError, match="name must be a non-empty string"):
        register_policy_loss("")


def test_user_advantage() -> None:
    @register_advantage("test_centered_twice")
    def centered_twice(rewards: Tensor, index: Tensor, *, factor: float = 2.0) -> Tensor:
        means = torch.zeros(int(index.max()) + 1, dtype=rewards.dtype).index_add(0, index, rewards)
        counts = torch.bincount(index).to(rewards.dtype)
        return factor * (rewards - (means / counts)[index])

    try:
        # ids 40, 40, 3: group 40 has mean 0.5; the dense index of id 3 is 0, of id 40 is 1.
        out = compute_advantages(
            "test_centered_twice", torch.tensor([1.0, 0.0, 5.0]), torch.tensor([40, 40, 3]), factor=3.0
        )
        assert out.tolist() == [1.5, -1.5, 0.0]
    finally:
        ADVANTAGES.unregister("test_centered_twice")
