"""Golden numbers for rollout/learner mismatch correction (docs/algorithms.md section 13)."""

from __future__ import annotations

import math

import pytest
import torch

from rlkit.algorithms import compute_policy_loss, mismatch_kl, rollout_correction

# One response of 3 sampled tokens plus one padding column (garbage that must not matter).
# x = old − behaviour = [0.5, −0.2, 0.0 | pad]
BEHAVIOUR = torch.tensor([[-1.0, -2.0, -0.5, 7.0]], dtype=torch.float64)
OLD = torch.tensor([[-0.5, -2.2, -0.5, -9.0]], dtype=torch.float64)
MASK = torch.tensor([[1, 1, 1, 0]], dtype=torch.float64)
E05, EM02 = math.exp(0.5), math.exp(-0.2)  # 1.648721, 0.818731


@pytest.mark.parametrize(
    ("kind", "level", "clip", "expected"),
    [
        # token ratios ρ = [1.648721, 0.818731, 1]
        ("none", "token", 2.0, [1.0, 1.0, 1.0, 1.0]),
        ("tis", "token", 2.0, [E05, EM02, 1.0, 1.0]),  # nothing above C = 2
        ("tis", "token", 1.5, [1.5, EM02, 1.0, 1.0]),  # 1.648721 truncated to 1.5
        ("mis", "token", 1.5, [0.0, EM02, 1.0, 1.0]),  # 1.648721 > 1.5: masked to 0
        # sequence ratio ρ = exp(0.5 − 0.2 + 0) = exp(0.3) = 1.349859 on every token
        ("tis", "sequence", 2.0, [math.exp(0.3)] * 3 + [1.0]),
        ("tis", "sequence", 1.2, [1.2, 1.2, 1.2, 1.0]),
        ("mis", "sequence", 1.2, [0.0, 0.0, 0.0, 1.0]),
        ("mis", "sequence", 2.0, [math.exp(0.3)] * 3 + [1.0]),
    ],
)
def test_weights(kind, level, clip, expected):
    out = rollout_correction(BEHAVIOUR, OLD, MASK, kind=kind, level=level, clip=clip)
    torch.testing.assert_close(out.weights, torch.tensor([expected], dtype=torch.float64), rtol=0, atol=1e-12)
    assert not out.weights.requires_grad


def test_over_counts_tokens_past_the_clip():
    token = rollout_correction(BEHAVIOUR, OLD, MASK, kind="tis", level="token", clip=1.5)
    assert token.over.tolist() == [[True, False, False, False]]
    seq = rollout_correction(BEHAVIOUR, OLD, MASK, kind="mis", level="sequence", clip=1.2)
    assert seq.over.tolist() == [[True, True, True, False]]
    torch.testing.assert_close(seq.log_ratio, torch.tensor([[0.3, 0.3, 0.3, 0.0]], dtype=torch.float64))


def test_mismatch_kl_is_k3_of_the_log_ratio():
    kl = mismatch_kl(BEHAVIOUR, OLD, MASK)
    # e^x − x − 1: x=0.5 → 0.148721; x=−0.2 → 0.018731; x=0 → 0; padding → 0
    expected = [E05 - 0.5 - 1, EM02 + 0.2 - 1, 0.0, 0.0]
    torch.testing.assert_close(kl, torch.tensor([expected], dtype=torch.float64), rtol=0, atol=1e-12)
    assert float(kl.sum() / MASK.sum()) == pytest.approx(0.055817, abs=1e-6)  # the logged token mean


def test_identical_logprobs_give_unit_weights_and_zero_kl():
    for kind in ("tis", "mis"):
        out = rollout_correction(OLD, OLD, MASK, kind=kind, level="sequence", clip=2.0)
        assert out.weights.tolist() == [[1.0, 1.0, 1.0, 1.0]]
    assert mismatch_kl(OLD, OLD, MASK).abs().max() == 0


def test_huge_sequence_ratio_masks_without_nan():
    behaviour = torch.full((1, 4), -50.0)
    old = torch.zeros(1, 4)
    out = rollout_correction(behaviour, old, torch.ones(1, 4), kind="mis", level="sequence", clip=2.0)
    assert out.weights.tolist() == [[0.0] * 4]  # ρ = e^200 overflows float32; masked, no nan
    tis = rollout_correction(behaviour, old, torch.ones(1, 4), kind="tis", level="sequence", clip=2.0)
    torch.testing.assert_close(tis.weights, torch.full((1, 4), 2.0))


def test_weights_scale_the_policy_gradient_as_constants():
    """Scaling per-token advantages by w equals weighting each token's loss: on-policy ppo_clip, A=1,
    token-mean over 3 tokens: ∂loss/∂logprob_t = −w_t/3."""
    w = rollout_correction(BEHAVIOUR, OLD, MASK, kind="tis", level="token", clip=1.5).weights
    logprobs = OLD.clone().requires_grad_(True)
    loss, _ = compute_policy_loss("ppo_clip", logprobs, OLD, torch.ones(1, 1, dtype=torch.float64) * w, MASK)
    loss.backward()
    torch.testing.assert_close(
        logprobs.grad, torch.tensor([[-1.5 / 3, -EM02 / 3, -1 / 3, 0.0]], dtype=torch.float64), rtol=0, atol=1e-12
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "is"}, "unknown rollout correction kind 'is'; known: none, tis, mis"),
        ({"level": "batch"}, "unknown rollout correction level 'batch'; known: token, sequence"),
        ({"clip": 0.0}, "rollout correction clip must be > 0, got 0.0"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        rollout_correction(BEHAVIOUR, OLD, MASK, **kwargs)


def test_shape_mismatch_is_named():
    with pytest.raises(ValueError, match=r"must all be \[B, T\]"):
        rollout_correction(BEHAVIOUR, OLD[:, :3], MASK)
