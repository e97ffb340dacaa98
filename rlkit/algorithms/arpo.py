"""ARPO: entropy-based adaptive branching and advantage attribution (arXiv 2507.19849).

Branching (section 3.2, algorithms.md section 11). Per prompt: start N rollouts; each records the
normalised entropy of its first segment, ``H_init``. After every tool result, the entropy ``H_t``
of the first k tokens generated right AFTER it gives ``ΔH_t = H_t − H_init`` and the trajectory
branches (Z−1 copies of the prefix that ends with the tool result) with probability::

    P_t = clip(α + β·ΔH_t, 0, 1)                                             (ARPO eq. 3)

until the prompt holds M trajectories; a prompt whose trajectories all end with budget left is
filled with fresh rollouts only. :class:`ArpoTree` holds one prompt's budget and baseline; it
takes the entropies and the RNG from its caller, so a test can inject both.

Entropy (rlkit's normalisation): for each of the first k steps, ``−Σ_i p_i log p_i`` over the
top-m log-probs the engine returns (m = ``top_logprobs``; probabilities not renormalised, as
the public code), averaged over the steps, divided by ``ln |V|``; so 0 <= H <= 1 and a short
segment is not biased low (the public code sums over steps).

Attribution (section 3.3) over a group whose members share prefixes:
- soft (default; the public code): plain GRPO over the M full trajectories;
- hard: a shared prefix token is trained once, with the mean advantage of the d trajectories
  that contain it (:func:`hard_attribution`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor


def normalized_entropy(top_logprobs: Sequence[Sequence[float]], *, tokens: int, vocab_size: int) -> float:
    """Mean over the first ``tokens`` steps of ``−Σ p log p`` (top-m log-probs), divided by ``ln vocab_size``."""
    steps = list(top_logprobs)[:tokens]
    if not steps:
        return 0.0
    per_step = [-sum(math.exp(lp) * lp for lp in step) for step in steps]
    return sum(per_step) / len(per_step) / math.log(vocab_size)


def branch_probability(delta_h: float, *, alpha: float, beta: float) -> float:
    """``clip(α + β·ΔH, 0, 1)``."""
    return min(1.0, max(0.0, alpha + beta * delta_h))


@dataclass
class ArpoTree:
    """One prompt's branching state: budget M, N initial rollouts, beam Z, α, β, and its RNG."""

    budget: int
    initial: int
    beam: int
    alpha: float
    beta: float
    rng: random.Random
    used: int = 0
    branches: int = 0
    deltas: list[float] = field(default_factory=list)

    def start(self) -> int:
        """How many rollouts to start (N, or M if smaller)."""
        n = min(self.initial, self.budget - self.used)
        self.used += n
        return n

    def after_tool(self, entropy: float, h_init: float) -> int:
        """Copies to fork from a trajectory whose segment after a tool result has ``entropy``."""
        delta = entropy - h_init
        self.deltas.append(delta)
        room = self.budget - self.used
        if room <= 0:
            return 0
        if self.rng.random() >= branch_probability(delta, alpha=self.alpha, beta=self.beta):
            return 0
        copies = min(self.beam - 1, room)
        self.used += copies
        self.branches += copies
        return copies

    def fill(self) -> int:
        """Fresh rollouts to add once every trajectory of the prompt has ended: the rest of M."""
        n = self.budget - self.used
        self.used = self.budget
        return n


def hard_attribution(
    segment_keys: Sequence[Sequence[tuple[Hashable, int]]], advantages: Tensor, response_len: int
) -> tuple[Tensor, Tensor]:
    """Per-token advantages and a keep-mask for hard attribution.

    ``segment_keys[i]`` lists trajectory i's response segments in order as ``(key, length)``;
    trajectories forked from one another share the keys of their common prefix. A segment held by
    the d trajectories D gets advantage ``mean_{j in D} A_j`` and is kept (mask 1) in the first of
    them only, so each shared token enters the loss once. Returns ``([B, R] advantages, [B, R] mask)``.
    """
    holders: dict[Hashable, list[int]] = {}
    for i, segments in enumerate(segment_keys):
        for key, _ in segments:
            holders.setdefault(key, []).append(i)
    B = len(segment_keys)
    adv = torch.zeros(B, response_len, dtype=torch.float32)
    keep = torch.zeros(B, response_len, dtype=torch.float32)
    for i, segments in enumerate(segment_keys):
        col = 0
        for key, length in segments:
            members = holders[key]
            adv[i, col : col + length] = advantages[members].float().mean()
            keep[i, col : col + length] = float(members[0] == i)
            col += length
    return adv, keep
