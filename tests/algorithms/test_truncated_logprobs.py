"""The learners' log-probs under top-p / top-k are vLLM's ``processed_logprobs`` (issue 10, finding 3).

vLLM's own masking function (``apply_top_k_top_p_pytorch``, what its CPU sampler runs) is the
reference: the same logits through both must give the same log-probs and the same kept set.
An engine-level check (a real training step with top_p=0.9) is in tests/e2e/test_top_p_step.py.
"""

from __future__ import annotations

import pytest
import torch

from rlkit.algorithms import token_logprobs_from_hidden
from rlkit.algorithms.logprobs import truncation_mask

V = 64


def _vllm_logprobs(logits: torch.Tensor, top_p: float, top_k: int) -> torch.Tensor:
    from vllm.v1.sample.ops.topk_topp_sampler import apply_top_k_top_p_pytorch

    n = logits.shape[0]
    k = torch.full((n,), top_k, dtype=torch.long) if top_k > 0 else None
    p = torch.full((n,), top_p) if top_p < 1 else None
    return apply_top_k_top_p_pytorch(logits.clone(), k, p, allow_cpu_sync=True).log_softmax(-1)


def _logits(seed: int = 0, n: int = 6) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, V, generator=g) * torch.linspace(0.5, 4.0, n)[:, None]  # flat to peaked rows


@pytest.mark.parametrize(("top_p", "top_k"), [(0.9, -1), (0.5, -1), (1.0, 5), (0.7, 10), (0.95, 40)])
def test_logprobs_equal_vllms_processed_logprobs(top_p, top_k):
    logits = _logits()
    reference = _vllm_logprobs(logits, top_p, top_k)
    targets = logits.argmax(-1)  # the most likely token is always kept by both
    # hidden = logits and weight = identity: the projection returns the logits themselves
    ours, entropy = token_logprobs_from_hidden(
        logits, torch.eye(V), targets, top_p=top_p, top_k=top_k, with_entropy=True, chunk_size=4
    )
    torch.testing.assert_close(ours, reference.gather(-1, targets[:, None])[:, 0], rtol=0, atol=1e-6)
    dropped = truncation_mask(logits, top_k=top_k, top_p=top_p)
    assert torch.equal(dropped, torch.isinf(reference))
    assert 0 < int(dropped.sum()) < dropped.numel()  # the truncation really removed tokens
    p = reference.exp()
    expected_entropy = -(p * reference.masked_fill(torch.isinf(reference), 0)).sum(-1)
    torch.testing.assert_close(entropy, expected_entropy, rtol=0, atol=1e-5)


def test_off_is_the_full_softmax():
    logits = _logits(1)
    targets = torch.arange(6)
    for top_p, top_k in ((1.0, -1), (1.0, 0)):
        ours, _ = token_logprobs_from_hidden(logits, torch.eye(V), targets, top_p=top_p, top_k=top_k)
        torch.testing.assert_close(ours, logits.log_softmax(-1).gather(-1, targets[:, None])[:, 0], rtol=0, atol=1e-6)


def test_sampled_token_outside_the_nucleus_is_kept():
    logits = torch.tensor([[5.0, 4.0, 0.0, -1.0]])
    # top_p=0.5 keeps only token 0 (p=0.72); token 3 (p=0.004) is dropped unless it was the sampled one
    assert truncation_mask(logits, top_p=0.5).tolist() == [[False, True, True, True]]
    assert truncation_mask(logits, top_p=0.5, keep=torch.tensor([3])).tolist() == [[False, True, True, False]]
    lp, _ = token_logprobs_from_hidden(logits, torch.eye(4), torch.tensor([3]), top_p=0.5)
    expected = torch.tensor([5.0, -1.0]).log_softmax(-1)[1]  # renormalised over {0, 3}
    torch.testing.assert_close(lp, expected[None], rtol=0, atol=1e-6)


def test_gradient_reaches_only_kept_logits():
    logits = _logits(2, n=1).requires_grad_(True)
    target = logits.argmax(-1)
    lp, _ = token_logprobs_from_hidden(logits, torch.eye(V), target, top_p=0.9)
    lp.sum().backward()
    dropped = truncation_mask(logits.detach(), top_p=0.9)
    assert torch.count_nonzero(logits.grad[dropped]) == 0
    kept_p = (_vllm_logprobs(logits.detach(), 0.9, -1)).exp()
    # ∂ log p_target / ∂ z_v = 1[v = target] − p_v over the kept set
    expected = -kept_p
    expected[0, target] += 1
    torch.testing.assert_close(logits.grad, expected, rtol=0, atol=1e-6)


def test_bad_top_p_is_named():
    with pytest.raises(ValueError, match=r"top_p must be in \(0, 1\], got 0.0"):
        token_logprobs_from_hidden(torch.zeros(1, 4), torch.eye(4), torch.tensor([0]), top_p=0.0)
