"""Render dataset rows into prompt token ids with the tokenizer's chat template."""

from __future__ import annotations

from rlkit.config import DataConfig
from rlkit.data.loader import DataError


class PromptRenderer:
    """``[system] + few_shot + user(prompt)`` through the chat template, ending with the assistant turn."""

    def __init__(self, tokenizer, cfg: DataConfig) -> None:
        self.tokenizer, self.cfg = tokenizer, cfg
        prefix = [{"role": "system", "content": cfg.system_prompt}] if cfg.system_prompt else []
        self.prefix = prefix + [m.model_dump() for m in cfg.few_shot]

    def messages(self, row: dict) -> list[dict]:
        prompt = row[self.cfg.prompt_field]
        if isinstance(prompt, str):
            return self.prefix + [{"role": "user", "content": prompt}]
        if isinstance(prompt, list) and all(isinstance(m, dict) and "role" in m and "content" in m for m in prompt):
            return self.prefix + prompt
        raise DataError(f"row {row.get('id', '?')}: field {self.cfg.prompt_field!r} must be a string or a list of chat messages")

    def token_ids(self, row: dict) -> list[int]:
        ids = self.tokenizer.apply_chat_template(self.messages(row), add_generation_prompt=True, tokenize=True)
        if isinstance(ids, dict) or hasattr(ids, "input_ids"):
            ids = ids["input_ids"]
        ids = list(ids)
        if len(ids) > self.cfg.max_prompt_tokens:
            raise DataError(
                f"row {row.get('id', '?')}: prompt has {len(ids)} tokens, over data.max_prompt_tokens={self.cfg.max_prompt_tokens}"
            )
        return ids
