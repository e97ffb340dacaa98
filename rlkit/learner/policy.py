"""A causal LM that returns response-token log-probs (and entropies) directly.

Wrapping the HF model in one module lets FSDP2 shard it with the wrapper as
root: the embedding, final norm and output projection (tied or not) are
gathered for the wrapper's forward, and log-probs are computed from the final
hidden states in token chunks (:func:`rlkit.algorithms.token_logprobs_from_hidden`),
so a float32 [B, T, V] log-softmax never exists.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rlkit.algorithms import token_logprobs_from_hidden
from rlkit.batch import TrainBatch
from rlkit.learner.packing import flash_kwargs, pack_rows


class CausalLMPolicy(nn.Module):
    def __init__(self, hf_model: nn.Module) -> None:
        super().__init__()
        self.hf = hf_model

    @property
    def decoder_layers(self) -> nn.ModuleList:
        base = getattr(self.hf, self.hf.base_model_prefix)
        return base.layers

    def forward(
        self, batch: TrainBatch, *, temperature: float, chunk_size: int, with_entropy: bool,
        top_p: float = 1.0, top_k: int = -1, packed: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """Log-probs [B, R] of the response tokens (0 at masked positions), entropies or None, under the
        sampling distribution (temperature, and vLLM's top-p/top-k truncation when set).

        ``packed``: the rows' tokens run end to end in one row with per-sequence position ids and no
        padding (rlkit/learner/packing.py); the same log-probs, without computing padding."""
        base = getattr(self.hf, self.hf.base_model_prefix)
        valid = batch.response_mask > 0
        if packed:
            row = pack_rows(batch)
            extra = flash_kwargs(row, row.input_ids.device) if self.hf.config._attn_implementation.startswith("flash") else {}
            hidden = base(input_ids=row.input_ids, position_ids=row.position_ids, use_cache=False, **extra).last_hidden_state
            predictors = hidden[0, row.predictors]
        else:
            position_ids = (batch.attention_mask.cumsum(-1) - 1).clamp(min=0)
            hidden = base(
                input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=position_ids, use_cache=False
            ).last_hidden_state
            P, R = batch.prompt_len, batch.response_len
            # Response token j (column P + j) is predicted by the hidden state at column P + j - 1.
            predictors = hidden[:, P - 1 : P - 1 + R][valid]
        weight = self.hf.get_output_embeddings().weight
        logprobs, entropy = token_logprobs_from_hidden(
            predictors, weight, batch.response_ids[valid],
            temperature=temperature, chunk_size=chunk_size, with_entropy=with_entropy, top_p=top_p, top_k=top_k,
        )
        return _scatter(logprobs, valid), (_scatter(entropy, valid) if entropy is not None else None)


def _scatter(values: Tensor, valid: Tensor) -> Tensor:
    out = values.new_zeros(valid.shape)
    return out.masked_scatter(valid, values)


def load_hf_model(
    path: str, *, dtype: torch.dtype, gradient_checkpointing: bool, attn_implementation: str = "sdpa"
) -> nn.Module:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, attn_implementation=attn_implementation)
    model.config.use_cache = False
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model
