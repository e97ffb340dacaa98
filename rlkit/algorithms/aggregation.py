"""Loss aggregation over a padded [B, T] batch.

``L_b = Σ_t m_bt`` is row b's valid-token count, ``R`` the number of rows with
``L_b > 0`` (empty rows count nowhere), ``T = mask.shape[1]``:

- ``token-mean``:              ``Σ m·ℓ / max(Σ m, 1)``               (DAPO token-level loss, arXiv 2503.14476)
- ``seq-mean-token-sum``:      ``Σ m·ℓ / max(R, 1)``
- ``seq-mean-token-mean``:     ``(1/max(R,1)) Σ_{b:L_b>0} Σ_t m·ℓ / L_b``   (GRPO objective, arXiv 2402.03300)
- ``seq-mean-token-sum-norm``: ``Σ m·ℓ / (norm_len · max(R, 1))``    (Dr.GRPO, arXiv 2503.20783)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, NamedTuple

import torch
from torch import Tensor

from rlkit.algorithms.registry import ParameterError

__all__ = ["AGG_MODES", "AggMode", "aggregate", "aggregation_weight", "check_loss_agg"]

SUM_NORM = "seq-mean-token-sum-norm"


def _token_mean(values: Tensor, mask: Tensor, norm_len: int) -> Tensor:
    return values.sum() / mask.sum().clamp(min=1)


def _seq_mean_token_sum(values: Tensor, mask: Tensor, norm_len: int) -> Tensor:
    return values.sum() / _rows(mask).clamp(min=1)


def _seq_mean_token_mean(values: Tensor, mask: Tensor, norm_len: int) -> Tensor:
    per_row = values.sum(dim=1) / mask.sum(dim=1).clamp(min=1)
    return per_row.sum() / _rows(mask).clamp(min=1)


def _seq_mean_token_sum_norm(values: Tensor, mask: Tensor, norm_len: int) -> Tensor:
    return values.sum() / (norm_len * _rows(mask).clamp(min=1))


def _rows(mask: Tensor) -> Tensor:
    return (mask.sum(dim=1) > 0).sum()


class AggMode(NamedTuple):
    """``reduce(masked_values, float_mask, norm_len)``; ``unit``: what a piece's weight counts."""

    reduce: Callable[[Tensor, Tensor, int], Tensor]
    unit: Literal["tokens", "rows"]


AGG_MODES: dict[str, AggMode] = {
    "token-mean": AggMode(_token_mean, "tokens"),
    "seq-mean-token-sum": AggMode(_seq_mean_token_sum, "rows"),
    "seq-mean-token-mean": AggMode(_seq_mean_token_mean, "rows"),
    SUM_NORM: AggMode(_seq_mean_token_sum_norm, "rows"),
}


def check_loss_agg(loss_agg: str, *, norm_len: int | None = None) -> None:
    """Raise for an unknown mode, or a ``norm_len`` given to a mode other than sum-norm or not >= 1."""
    if loss_agg not in AGG_MODES:
        raise ParameterError("loss_agg", f"unknown mode {loss_agg!r}; known: {', '.join(AGG_MODES)}")
    if norm_len is None:
        return
    if loss_agg != SUM_NORM:
        raise ParameterError("norm_len", f"only applies to loss_agg {SUM_NORM!r}, not {loss_agg!r}")
    if isinstance(norm_len, bool) or not isinstance(norm_len, int) or norm_len < 1:
        raise ParameterError("norm_len", f"must be an int >= 1, got {norm_len!r}")


def aggregate(values: Tensor, mask: Tensor, *, loss_agg: str = "token-mean", norm_len: int | None = None) -> Tensor:
    """Aggregate per-token ``values`` [B, T] over the valid tokens of ``mask`` [B, T] into a 0-dim tensor.

    Masked positions are selected away with ``torch.where`` (not multiplied), so
    any finite or infinite value there changes neither the result nor the gradient
    of the valid positions. With no valid token the result is exactly 0 and stays
    connected to ``values``' graph. ``norm_len`` (default ``T``) is only accepted
    for ``seq-mean-token-sum-norm``.
    """
    check_loss_agg(loss_agg, norm_len=norm_len)
    if values.dim() != 2 or mask.shape != values.shape:
        raise ValueError(f"values and mask must both be [B, T]; got {tuple(values.shape)} and {tuple(mask.shape)}")
    valid = mask.bool()
    masked = torch.where(valid, values, torch.zeros((), dtype=values.dtype, device=values.device))
    counts = valid.to(values.dtype)
    return AGG_MODES[loss_agg].reduce(masked, counts, norm_len if norm_len is not None else values.shape[1])


def aggregation_weight(loss_agg: str, piece_mask: Tensor, *, total_tokens: int, total_rows: int) -> float:
    """Factor for one piece (micro-batch or data-parallel shard) of a mini-batch.

    ``Σ_pieces aggregation_weight(piece) · aggregate(piece)`` equals
    ``aggregate(whole)``, values and gradients, when every piece uses the same
    ``loss_agg`` (and, for ``seq-mean-token-sum-norm``, the same explicit
    ``norm_len``, since its default ``T`` follows each piece's padding).

    - ``token-mean``: the piece's share of valid tokens, ``Σ m_piece / total_tokens``.
    - the three ``seq-mean-*`` modes: its share of non-empty rows, ``R_piece / total_rows``.

    Args:
        loss_agg: aggregation mode used for the pieces.
        piece_mask: [b, T] mask of this piece.
        total_tokens: ``Σ mask`` over the whole mini-batch (summed over ranks).
        total_rows: rows with at least one valid token over the whole mini-batch.

    A piece with no valid token, or a mini-batch with none, gets weight 0.
    """
    check_loss_agg(loss_agg)
    if total_tokens < 0 or total_rows < 0:
        raise ValueError(f"total_tokens and total_rows must be >= 0, got {total_tokens} and {total_rows}")
    valid = piece_mask.bool()
    unit = AGG_MODES[loss_agg].unit
    counts = {"tokens": (int(valid.sum()), total_tokens), "rows": (int((valid.sum(dim=1) > 0).sum()), total_rows)}
    part, whole = counts[unit]
    if part > whole:
        raise ValueError(f"piece has {part} valid {unit}, more than the mini-batch total {whole}")
    return part / whole if whole > 0 else 0.0
