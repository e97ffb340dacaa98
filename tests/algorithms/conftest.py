"""Shared fixtures for rlkit.algorithms tests: float64, tiny tensors, exact numbers."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from rlkit.algorithms import compute_policy_loss

F64 = torch.float64


@pytest.fixture
def single_token() -> Callable[..., tuple[float, float, dict[str, float]]]:
    """``(ℓ, ∂ℓ/∂logprob, metrics)`` of one valid token with ratio ``r`` and advantage ``A``.

    old_logprob = log(0.5), logprob = log(0.5·r); with one token every aggregation
    mode has weight 1, so the loss is ℓ and the gradient is g.
    """

    def run(name: str, *, A: float, r: float, **params: object) -> tuple[float, float, dict[str, float]]:
        old = torch.tensor([[math.log(0.5)]], dtype=F64)
        logprobs = (old + math.log(r)).clone().requires_grad_()
        loss, metrics = compute_policy_loss(
            name, logprobs, old, torch.tensor([A], dtype=F64), torch.ones(1, 1, dtype=torch.bool), **params
        )
        (grad,) = torch.autograd.grad(loss, logprobs)
        return loss.item(), grad.item(), metrics

    return run
