"""Render dataset rows into prompt token ids with the tokenizer's chat template."""

from __future__ import annotations

import logging
import time

from rlkit.config import DataConfig
from rlkit.data.loader import DataError, load_rows

logger = logging.getLogger("rlkit")

_LISTED_ROWS = 20  # long-prompt errors name this many rows, then a count


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

    def render(self, row: dict) -> list[int]:
        """The prompt's token ids, whatever their length (``data.template``: chat template or raw text)."""
        if self.cfg.template == "raw":
            return list(self.tokenizer(self.raw_text(row), add_special_tokens=True)["input_ids"])
        ids = self.tokenizer.apply_chat_template(
            self.messages(row), add_generation_prompt=True, tokenize=True, **self.cfg.chat_template_kwargs
        )
        if isinstance(ids, dict) or hasattr(ids, "input_ids"):
            ids = ids["input_ids"]
        return list(ids)

    def raw_text(self, row: dict) -> str:
        """``data.raw_format`` filled from ``row`` (``template: raw``)."""
        try:
            return self.cfg.raw_format.format(**row)
        except KeyError as err:
            raise DataError(
                f"row {row.get('id', '?')}: data.raw_format names field {err.args[0]!r}, which the row lacks "
                f"(fields present: {sorted(row)})"
            ) from None

    def token_ids(self, row: dict) -> list[int]:
        ids = self.render(row)
        if len(ids) > self.cfg.max_prompt_tokens:
            raise DataError(
                f"row {row.get('id', '?')}: prompt has {len(ids)} tokens, over data.max_prompt_tokens={self.cfg.max_prompt_tokens}"
            )
        return ids

    def drop_long(self, rows: list[dict], *, source: str) -> list[dict]:
        """``rows`` without those whose prompt exceeds ``data.max_prompt_tokens``, checked all at once
        when the data loads: ``data.on_long_prompt=error`` raises naming every such row index (of
        ``rows``) and its length; ``skip`` drops them and logs their indexes."""
        limit, started, last_report = self.cfg.max_prompt_tokens, time.perf_counter(), time.perf_counter()
        long: list[tuple[int, int]] = []
        for index, row in enumerate(rows):
            length = len(self.render(row))
            if length > limit:
                long.append((index, length))
            if time.perf_counter() - last_report > 10:
                last_report = time.perf_counter()
                rate = (index + 1) / (last_report - started)
                logger.info("checking prompt lengths: %d/%d rows, %.0f rows/s, ETA %.0f s",
                            index + 1, len(rows), rate, (len(rows) - index - 1) / rate)
        if not long:
            return rows
        listed = ", ".join(f"row {i} ({n} tokens)" for i, n in long[:_LISTED_ROWS])
        more = f" and {len(long) - _LISTED_ROWS} more" if len(long) > _LISTED_ROWS else ""
        what = f"{source}: {len(long)} of {len(rows)} prompts exceed data.max_prompt_tokens={limit}: {listed}{more}"
        if self.cfg.on_long_prompt == "error":
            raise DataError(f"{what}; raise data.max_prompt_tokens or set data.on_long_prompt=skip")
        if len(long) == len(rows):
            raise DataError(f"{what}; data.on_long_prompt=skip leaves no rows")
        logger.warning("%s; skipped (data.on_long_prompt=skip)", what)
        dropped = {i for i, _ in long}
        return [row for i, row in enumerate(rows) if i not in dropped]


def load_prompt_rows(cfg: DataConfig, renderer: PromptRenderer, *, split: str | None = None) -> list[dict]:
    """The rows of ``cfg.source`` (``split`` or ``cfg.split``), checked for missing fields and, all
    at once, for prompts over ``cfg.max_prompt_tokens`` (handled by ``cfg.on_long_prompt``)."""
    split = split or cfg.split
    rows = load_rows(cfg.source, split=split, prompt_field=cfg.prompt_field,
                     required_fields=cfg.required_fields, builtin_params=cfg.builtin)
    return renderer.drop_long(rows, source=f"{cfg.source} (split {split!r})")
