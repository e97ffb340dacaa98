"""The one object that carries a step's data between stages.

Token layout of every row: the prompt left-padded to ``prompt_len`` columns,
then the response right-padded to ``response_len`` columns::

    [pad pad p0 p1 p2 | r0 r1 r2 pad]      response token r_j sits at column prompt_len + j

Per-token fields (``response_mask``, log-probs, entropies) are [B, response_len];
per-sequence fields (rewards, advantages, group ids) are [B]. Each stage adds
fields; none re-derives what an earlier one knows.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor


@dataclass
class TrainBatch:
    input_ids: Tensor  # [B, P + R] long
    attention_mask: Tensor  # [B, P + R] long (1 = real token)
    response_mask: Tensor  # [B, R] float: 1 where the token is trained on
    prompt_len: int  # P
    group_ids: Tensor  # [B] long
    rewards: Tensor  # [B] float
    advantages: Tensor  # [B] float
    rollout_logprobs: Tensor  # [B, R] float: sampled-token log-probs reported by the engine
    sft_select: Tensor  # [B] bool: rows that enter the SFT term
    old_logprobs: Tensor | None = None  # [B, R] filled by the learners before the update
    old_entropy: Tensor | None = None  # [B, R] when a loss (ERC) needs it
    ref_logprobs: Tensor | None = None  # [B, R] when a KL term needs it
    replayed: Tensor | None = None  # [B] bool: replayed answers (RLEP), whose rollout_logprobs are unknown

    @property
    def size(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def response_len(self) -> int:
        return int(self.response_mask.shape[1])

    @property
    def response_ids(self) -> Tensor:
        return self.input_ids[:, self.prompt_len :]

    def select(self, index: Tensor | list[int]) -> "TrainBatch":
        """Rows ``index`` (in that order), every field kept."""
        index = torch.as_tensor(index, dtype=torch.long)
        return replace(self, **{f.name: _rows(getattr(self, f.name), index) for f in fields(self) if f.name != "prompt_len"})

    def pad_rows(self, multiple: int) -> "TrainBatch":
        """Append empty rows (no valid token: zero loss, zero gradient) up to a multiple of ``multiple``."""
        extra = (-self.size) % multiple
        if extra == 0:
            return self
        # Reuse row 0's tokens (any valid ids) with every mask zeroed.
        pad = self.select([0] * extra)
        pad.response_mask = torch.zeros_like(pad.response_mask)
        pad.attention_mask = torch.zeros_like(pad.attention_mask)
        # One attended token (a row with none makes SDPA return NaN), placed in the last
        # prompt column: the one column trimmed() always keeps, so a piece made only of
        # padding rows still has a prompt to predict from and a token to attend to.
        pad.attention_mask[:, max(self.prompt_len - 1, 0)] = 1
        pad.sft_select = torch.zeros_like(pad.sft_select)
        return concat([self, pad])

    def shards(self, world_size: int) -> list["TrainBatch"]:
        """One piece per data-parallel rank, any batch size: padded with empty rows to a multiple of
        ``world_size`` (a batch smaller than the world leaves some ranks only empty rows)."""
        return self.pad_rows(world_size).chunks(world_size)

    def loss_totals(self) -> dict:
        """What every rank's loss weight is measured against (algorithms.md section 5): valid
        tokens and non-empty rows of the whole mini-batch, and the same for its SFT rows."""
        valid = self.response_mask > 0
        sft_valid = valid & self.sft_select[:, None]
        return dict(
            total_tokens=int(valid.sum()),
            total_rows=int((valid.sum(1) > 0).sum()),
            total_sft=(int(sft_valid.sum()), int((sft_valid.sum(1) > 0).sum())),
        )

    def chunks(self, count: int) -> list["TrainBatch"]:
        """``count`` contiguous pieces of equal row count (call ``pad_rows(count)`` first)."""
        if self.size % count:
            raise ValueError(f"{self.size} rows do not split into {count} equal pieces")
        step = self.size // count
        return [self.select(list(range(i, i + step))) for i in range(0, self.size, step)]

    def trimmed(self) -> "TrainBatch":
        """Drop prompt columns that are padding in every row and trailing all-padding response columns.

        At least one prompt column stays: response token 0 is predicted from the hidden
        state of the last prompt column, so a prompt length of 0 has nothing to predict from.
        """
        prompt_pad = int((self.attention_mask[:, : self.prompt_len] == 0).all(dim=0).long().cumprod(0).sum())
        prompt_pad = min(prompt_pad, max(self.prompt_len - 1, 0))
        used = self.response_mask.sum(dim=0).nonzero()
        keep_r = int(used[-1]) + 1 if len(used) else 1
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("input_ids", "attention_mask"):
                value = value[:, prompt_pad : self.prompt_len + keep_r]
            elif isinstance(value, Tensor) and value.dim() == 2:
                value = value[:, :keep_r]
            out[f.name] = value
        out["prompt_len"] = self.prompt_len - prompt_pad
        return TrainBatch(**out)


def _rows(value, index: Tensor):
    return value.index_select(0, index) if isinstance(value, Tensor) else value


def concat(batches: list[TrainBatch]) -> TrainBatch:
    """Stack batches with the same column layout."""
    first = batches[0]
    if any(b.prompt_len != first.prompt_len or b.response_len != first.response_len for b in batches):
        raise ValueError("concat needs batches with the same prompt_len and response_len")
    out = {}
    for f in fields(first):
        values = [getattr(b, f.name) for b in batches]
        if f.name == "prompt_len":
            out[f.name] = first.prompt_len
        elif all(v is None for v in values):
            out[f.name] = None
        elif any(v is None for v in values):
            raise ValueError(f"concat: field {f.name} is set in some batches only")
        else:
            out[f.name] = torch.cat(values)
    return TrainBatch(**out)


def build_batch(
    *,
    prompt_ids: list[list[int]],
    response_ids: list[list[int]],
    rollout_logprobs: list[list[float]],
    group_ids: list[int],
    rewards: list[float],
    advantages: Tensor,
    loss_mask: list[list[int]] | None = None,
    sft_select: list[bool] | None = None,
    replayed: list[bool] | None = None,
    pad_token_id: int,
) -> TrainBatch:
    """Pack per-sample token lists into the padded layout above.

    ``loss_mask`` (per response token, 1 = trained) lets multi-turn rollouts
    exclude tool-output tokens; by default every response token is trained on.
    """
    n = len(prompt_ids)
    if not (len(response_ids) == len(rollout_logprobs) == len(group_ids) == len(rewards) == n):
        raise ValueError("build_batch: every per-sample list must have the same length")
    P = max(len(p) for p in prompt_ids)
    R = max(1, max(len(r) for r in response_ids))
    input_ids = torch.full((n, P + R), pad_token_id, dtype=torch.long)
    attention = torch.zeros((n, P + R), dtype=torch.long)
    mask = torch.zeros((n, R), dtype=torch.float32)
    logprobs = torch.zeros((n, R), dtype=torch.float32)
    for i, (p, r, lp) in enumerate(zip(prompt_ids, response_ids, rollout_logprobs)):
        if len(lp) != len(r):
            raise ValueError(f"sample {i}: {len(r)} response tokens but {len(lp)} log-probs")
        input_ids[i, P - len(p) : P] = torch.tensor(p, dtype=torch.long)
        attention[i, P - len(p) : P + len(r)] = 1
        if r:
            input_ids[i, P : P + len(r)] = torch.tensor(r, dtype=torch.long)
            logprobs[i, : len(r)] = torch.tensor(lp, dtype=torch.float32)
            mask[i, : len(r)] = torch.tensor(loss_mask[i], dtype=torch.float32) if loss_mask else 1.0
    return TrainBatch(
        input_ids=input_ids,
        attention_mask=attention,
        response_mask=mask,
        prompt_len=P,
        group_ids=torch.tensor(group_ids, dtype=torch.long),
        rewards=torch.tensor(rewards, dtype=torch.float32),
        advantages=advantages.to(torch.float32),
        rollout_logprobs=logprobs,
        sft_select=torch.tensor(sft_select if sft_select is not None else [False] * n, dtype=torch.bool),
        replayed=torch.tensor(replayed, dtype=torch.bool) if replayed is not None else None,
    )
