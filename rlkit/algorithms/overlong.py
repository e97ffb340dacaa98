"""DAPO overlong reward shaping and overlong filtering.

DAPO, arXiv 2503.14476 (soft overlong punishment), for a response of length L,
budget ``L_max`` and soft buffer ``L_cache``:
``R_len(L) = 0`` if ``L ≤ L_max − L_cache``;
``((L_max − L_cache) − L) / L_cache · f`` if ``L_max − L_cache < L ≤ L_max``;
``−f`` if ``L > L_max``. It is added to the task reward.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["filter_truncated", "overlong_penalty"]


def overlong_penalty(lengths: Tensor, *, max_len: int, cache_len: int, factor: float = 1.0) -> Tensor:
    """Length penalty ``R_len`` per response, same shape as ``lengths``.

    Integer lengths give float32; floating lengths keep their dtype. Example
    (DAPO: max_len 20480, cache_len 4096): L = 18432 gives
    ``(16384 − 18432)/4096 = −0.5``.
    """
    if max_len < 1 or not 0 <= cache_len <= max_len:
        raise ValueError(
            f"need max_len >= 1 and 0 <= cache_len <= max_len, got max_len={max_len}, cache_len={cache_len}"
        )
    if factor < 0:
        raise ValueError(f"factor must be >= 0, got {factor}")
    dtype = lengths.dtype if lengths.is_floating_point() else torch.float32
    lengths = lengths.to(dtype)
    start = max_len - cache_len
    soft = (start - lengths) / max(cache_len, 1) * factor
    penalty = torch.where(lengths > start, soft, torch.zeros_like(lengths))
    return torch.where(lengths > max_len, torch.full_like(lengths, -factor), penalty)


def filter_truncated(mask: Tensor, truncated: Tensor) -> Tensor:
    """DAPO overlong filtering: a copy of ``mask`` [B, T] with the rows where ``truncated`` [B] is True zeroed."""
    if truncated.shape != mask.shape[:1] or truncated.dtype != torch.bool:
        got = f"{truncated.dtype} {tuple(truncated.shape)}"
        raise ValueError(f"truncated must be a bool tensor of shape [{mask.shape[0]}], got {got}")
    return torch.where(truncated.unsqueeze(1), torch.zeros_like(mask), mask)
