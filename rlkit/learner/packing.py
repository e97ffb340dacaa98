"""Packed sequences, token-budget micro-batches and token-balanced data-parallel ranks.

Padding every row of a micro-batch to its longest sequence wastes most of the
compute when answer lengths are long-tailed (NeMo-RL's sequence-packing design
reports 50-70% of compute spent on padding). Here a micro-batch's sequences are
laid end to end in one row ``(1, total_tokens)`` with per-sequence
``position_ids`` (0, 1, ... for each) and no attention mask:

- transformers (5.x ``masking_utils._preprocess_mask_arguments``) looks for
  sequence boundaries in ``position_ids`` only when no 2D attention mask and no
  cache are passed (``find_packed_sequence_indices``: a boundary wherever the
  position does not grow by 1), and ANDs a same-sequence mask into the causal
  mask, for SDPA, eager and flex attention;
- its flash attention path runs flash-attn's varlen kernel from
  ``cu_seq_lens_q/k`` and ``max_length_q/k`` (:func:`flash_kwargs`).

Models whose layers do not take their context from position ids alone (linear
attention, state-space layers) cannot pack: :func:`packing_unsupported` names
why, and the learner falls back to padding with a warning.

Micro-batches and rank shards are planned from sequence lengths only
(:func:`plan_micro_batches`, :func:`balance_ranks`), so loss weighting stays
exact: every piece is weighted by :func:`rlkit.algorithms.aggregation_weight`
against the whole mini-batch's totals (algorithms.md section 5), whatever rows
it holds.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import torch
from torch import Tensor

from rlkit.batch import TrainBatch

# Attention implementations of transformers that honour packed position ids without a 2D mask.
PACKING_ATTENTION = {"sdpa", "eager", "flex_attention", "flash_attention_2", "flash_attention_3"}
# Layer kinds whose context comes only from the attention mask (``config.layer_types``).
PACKING_LAYER_TYPES = {"full_attention", "sliding_attention"}


def packing_unsupported(config) -> str | None:
    """Why a model with this (transformers) ``config`` cannot be run packed, or None when it can."""
    attn = getattr(config, "_attn_implementation", None) or "eager"
    if attn not in PACKING_ATTENTION:
        return f"attention implementation {attn!r} has no packed-sequence path (known: {sorted(PACKING_ATTENTION)})"
    other = sorted(set(getattr(config, "layer_types", None) or []) - PACKING_LAYER_TYPES)
    if other:
        return f"layer types {other} do not take sequence boundaries from position ids"
    return None


def sequence_lengths(batch: TrainBatch) -> list[int]:
    """Attended tokens of each row: the tokens a packed forward computes for it."""
    return batch.attention_mask.sum(dim=1).tolist()


@dataclass(frozen=True)
class PackedRow:
    """A micro-batch laid out as one row; ``predictors[k]`` is the packed position whose hidden state
    predicts the k-th valid response token (row-major over ``valid``)."""

    input_ids: Tensor  # [1, N]
    position_ids: Tensor  # [1, N]
    predictors: Tensor  # [n_valid] long
    valid: Tensor  # [B, R] bool: response tokens with a log-prob
    cu_seqlens: Tensor  # [B + 1] int32: sequence starts in the packed row, then N
    max_len: int


def pack_rows(batch: TrainBatch) -> PackedRow:
    """Lay ``batch``'s attended tokens end to end. Each row's attended tokens must be contiguous (prompt
    then response, as :func:`rlkit.batch.build_batch` lays them out), so a packed sequence is exactly
    the padded row without its padding, at the same positions."""
    mask = batch.attention_mask.bool()
    lengths = mask.sum(dim=1)
    first = mask.long().argmax(dim=1)
    last = mask.shape[1] - 1 - mask.flip(1).long().argmax(dim=1)
    gaps = (lengths > 0) & (last - first + 1 != lengths)
    if (lengths == 0).any() or gaps.any():
        bad = int(((lengths == 0) | gaps).nonzero()[0])
        raise ValueError(f"pack_rows: row {bad}'s attention_mask is not one contiguous run of tokens")
    counts = mask.long().cumsum(dim=1)  # attended tokens up to and including each column
    starts = torch.cumsum(lengths, 0) - lengths
    P, R = batch.prompt_len, batch.response_len
    valid = batch.response_mask > 0
    # Response token j (column P + j) is predicted by column P + j - 1, which must be attended.
    before = mask[:, P - 1 : P - 1 + R]
    if (valid & ~before).any():
        bad = int((valid & ~before).any(dim=1).nonzero()[0])
        raise ValueError(f"pack_rows: row {bad} has a trained response token with no attended token before it")
    packed_index = starts[:, None] + counts[:, P - 1 : P - 1 + R] - 1
    cu = torch.zeros(len(lengths) + 1, dtype=torch.int32)
    cu[1:] = torch.cumsum(lengths, 0)
    return PackedRow(
        input_ids=batch.input_ids[mask][None],
        position_ids=(counts - 1)[mask][None],
        predictors=packed_index[valid],
        valid=valid,
        cu_seqlens=cu,
        max_len=int(lengths.max()),
    )


def flash_kwargs(row: PackedRow, device: torch.device) -> dict:
    """transformers' flash-attention varlen kwargs (the kernel's ``cu_seqlens``), so it need not infer
    them from position ids in every layer."""
    cu = row.cu_seqlens.to(device)
    return {"cu_seq_lens_q": cu, "cu_seq_lens_k": cu, "max_length_q": row.max_len, "max_length_k": row.max_len}


def plan_micro_batches(
    lengths: list[int], *, rows: int, max_tokens: int | None, packed: bool
) -> list[list[int]]:  # fmt: skip
    """Row indices of each micro-batch.

    Without ``max_tokens``: consecutive groups of ``rows`` rows. With it, sequences are bin-packed
    first-fit decreasing so that each micro-batch's cost stays within ``max_tokens``: the sum of its
    lengths when ``packed``, its row count times its longest length when padded. A sequence longer
    than the budget gets a micro-batch of its own. Every row is in exactly one micro-batch.
    """
    n = len(lengths)
    if max_tokens is None:
        return [list(range(i, min(i + rows, n))) for i in range(0, n, rows)]
    order = sorted(range(n), key=lambda i: (-lengths[i], i))
    if not packed:  # longest first: a micro-batch's padded width is its first row's length
        plan: list[list[int]] = []
        for i in order:
            if plan and (len(plan[-1]) + 1) * lengths[plan[-1][0]] <= max_tokens:
                plan[-1].append(i)
            else:
                plan.append([i])
        return plan
    bins: list[list[int]] = []
    loads: list[int] = []
    for i in order:
        for b, load in enumerate(loads):
            if load + lengths[i] <= max_tokens:
                bins[b].append(i)
                loads[b] += lengths[i]
                break
        else:
            bins.append([i])
            loads.append(lengths[i])
    return bins


def balance_ranks(lengths: list[int], world_size: int) -> list[list[int]]:
    """Split rows over ``world_size`` ranks by tokens, not position (greedy LPT: longest sequence to the
    least-loaded rank, ties to the rank with fewer rows, then the lower rank). With at least
    ``world_size`` rows of >= 1 token, every rank gets at least one row. Each rank's rows keep their
    batch order."""
    heap = [(0, 0, r) for r in range(world_size)]
    ranks: list[list[int]] = [[] for _ in range(world_size)]
    for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        load, count, r = heapq.heappop(heap)
        ranks[r].append(i)
        heapq.heappush(heap, (load + lengths[i], count + 1, r))
    return [sorted(rows) for rows in ranks]


def token_imbalance(loads: list[int]) -> float:
    """max / mean of the ranks' token loads (1.0: perfectly balanced)."""
    mean = sum(loads) / max(len(loads), 1)
    return max(loads) / mean if mean > 0 else 1.0


def balanced_shards(batch: TrainBatch, world_size: int) -> tuple[list[TrainBatch], list[list[int]], float]:
    """One piece per rank, balanced by tokens: the shards, each shard's row indices in ``batch``
    (indices >= ``batch.size`` are empty padding rows, added when the batch has fewer rows than
    ranks: they carry no loss and no gradient) and the token imbalance (max/mean)."""
    padded = batch.pad_rows(world_size) if batch.size < world_size else batch
    lengths = sequence_lengths(padded)
    plan = balance_ranks(lengths, world_size)
    imbalance = token_imbalance([sum(lengths[i] for i in rows) for rows in plan])
    return [padded.select(rows) for rows in plan], plan, imbalance


def empty_row(batch: TrainBatch) -> TrainBatch:
    """One row that carries no loss and no gradient (:meth:`TrainBatch.pad_rows`'s padding row)."""
    return batch.pad_rows(batch.size + 1).select([batch.size])
