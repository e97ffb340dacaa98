"""sample_checksum on tensors past 2**24 elements: the sampled indices stay in bounds and include the last."""

from __future__ import annotations

import torch

from rlkit.rollout.transport.base import sample_checksum


def test_large_tensor_samples_its_last_element():
    t = torch.zeros(28_311_552)  # the embedded model's embedding (49152 x 576): float32 linspace gave index n
    before = sample_checksum(t)
    t[-1] = 1.0
    assert sample_checksum(t) != before
    t[-1], t[1] = 0.0, 1.0  # an element between samples is not looked at
    assert sample_checksum(t) == before
