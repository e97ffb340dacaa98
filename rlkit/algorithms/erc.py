"""Entropy-ratio clipping (ERC), composable with every policy loss.

Source: "Entropy Ratio Clipping as a Soft Global Constraint for Stable
Reinforcement Learning", arXiv 2512.05591 (Kwai Klear). Per token,
``ρ = (H + 1e-8) / (H_old + 1e-8)``; with band ``(lo, hi)``:
``ℓ ← ℓ`` if ``lo < ρ < hi`` else ``ℓ ← sg(ℓ)``.
An out-of-band token keeps its value and stays in every aggregation
denominator (the mask is untouched) but contributes no gradient.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from rlkit.algorithms.registry import ParameterError

__all__ = ["ERC_EPS", "apply_erc", "check_erc", "erc_outside_band"]

ERC_EPS = 1e-8


def check_erc(erc: Sequence[float] | None) -> tuple[float, float] | None:
    """Normalise ``erc`` to ``(lo, hi)`` with ``0 < lo < 1 < hi``, or None when off."""
    if erc is None:
        return None
    if isinstance(erc, (str, bytes)) or not isinstance(erc, Sequence) or len(erc) != 2:
        raise ParameterError("erc", f"must be a (low, high) pair, got {erc!r}")
    lo, hi = erc
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in (lo, hi)):
        raise ParameterError("erc", f"bounds must be numbers, got {erc!r}")
    if not 0.0 < lo < 1.0 < hi:
        raise ParameterError("erc", f"band must satisfy 0 < low < 1 < high, got {erc!r}")
    return float(lo), float(hi)


def erc_outside_band(entropy: Tensor, old_entropy: Tensor, *, erc: tuple[float, float]) -> Tensor:
    """Bool [B, T]: tokens whose ``ρ = (H + 1e-8)/(H_old + 1e-8)`` is outside the open band."""
    lo, hi = erc
    rho = (entropy.detach() + ERC_EPS) / (old_entropy.detach() + ERC_EPS)
    return ~((rho > lo) & (rho < hi))


def apply_erc(values: Tensor, outside: Tensor) -> Tensor:
    """``ℓ ← sg(ℓ)`` on ``outside`` tokens: same values, zero gradient there."""
    return torch.where(outside, values.detach(), values)
