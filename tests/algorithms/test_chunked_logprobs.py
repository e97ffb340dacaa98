"""token_logprobs_from_hidden: chunked log-probs and entropies equal the direct computation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from rlkit.algorithms import token_logprobs_from_hidden

F64 = torch.float64


def _inputs(N: int = 10, H: int = 6, V: int = 13, dtype: torch.dtype = F64):
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(N, H, generator=g, dtype=dtype, requires_grad=True)
    weight = torch.randn(V, H, generator=g, dtype=dtype, requires_grad=True)
    targets = torch.randint(0, V, (N,), generator=g)
    return hidden, weight, targets


def _direct(hidden, weight, targets, temperature):
    logp = F.log_softmax(hidden @ weight.T / temperature, dim=-1)
    return logp.gather(-1, targets[:, None]).squeeze(-1), -(logp.exp() * logp).sum(-1)


@pytest.mark.parametrize("chunk_size", [1, 3, 10, 64])
def test_values_and_gradients_equal_direct(chunk_size: int) -> None:
    hidden, weight, targets = _inputs()
    # An arbitrary scalar of both outputs, so that both gradients are compared.
    coef_lp, coef_h = torch.linspace(-1, 1, 10, dtype=F64), torch.linspace(0.5, 2, 10, dtype=F64)
    lp, ent = token_logprobs_from_hidden(
        hidden, weight, targets, temperature=0.7, chunk_size=chunk_size, with_entropy=True
    )
    got = torch.autograd.grad((coef_lp * lp + coef_h * ent).sum(), (hidden, weight))
    ref_lp, ref_ent = _direct(hidden, weight, targets, 0.7)
    want = torch.autograd.grad((coef_lp * ref_lp + coef_h * ref_ent).sum(), (hidden, weight))
    assert_close(lp, ref_lp)
    assert_close(ent, ref_ent)
    assert_close(got[0], want[0])
    assert_close(got[1], want[1])


def test_backward_keeps_no_full_logits() -> None:
    # With checkpointing, no tensor of N·V elements (nor any chunk's logits beyond inputs) is saved for backward.
    hidden, weight, targets = _inputs(N=12, H=2, V=50)
    saved: list[int] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved.append(t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        lp, ent = token_logprobs_from_hidden(hidden, weight, targets, chunk_size=6, with_entropy=True)
    assert saved and max(saved) <= max(weight.numel(), hidden.numel())
    (lp.sum() + ent.sum()).backward()
    assert hidden.grad is not None and weight.grad is not None


def test_no_grad_path_and_dtypes() -> None:
    hidden, weight, targets = _inputs(dtype=torch.float32)
    with torch.no_grad():
        lp, ent = token_logprobs_from_hidden(hidden, weight, targets, chunk_size=4)
    assert ent is None and lp.dtype == torch.float32 and not lp.requires_grad
    assert_close(lp, _direct(hidden, weight, targets, 1.0)[0])
    lp16, _ = token_logprobs_from_hidden(hidden.detach().bfloat16(), weight.detach().bfloat16(), targets)
    assert lp16.dtype == torch.float32
    empty, empty_ent = token_logprobs_from_hidden(hidden[:0], weight, targets[:0], with_entropy=True)
    assert empty.shape == (0,) and empty_ent.shape == (0,)


def test_errors() -> None:
    hidden, weight, targets = _inputs()
    with pytest.raises(ValueError, match="need hidden \\[N, H\\] and weight \\[V, H\\]"):
        token_logprobs_from_hidden(hidden, weight.T, targets)
    with pytest.raises(ValueError, match="targets must be a long tensor"):
        token_logprobs_from_hidden(hidden, weight, targets.int())
    with pytest.raises(ValueError, match="temperature must be > 0"):
        token_logprobs_from_hidden(hidden, weight, targets, temperature=0.0)
