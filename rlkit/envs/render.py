"""Renderers: an observation's text -> token ids appended (masked) to a trajectory.

- ``inline`` (ARPO, arXiv 2507.19849): the result stays inside the assistant turn as
  ``" <result>\\n{text}\\n</result>"``, encoded WITHOUT special tokens (the public code's default
  encoding put a BOS before each result on Llama-3 tokenizers).
- ``chat``: a new chat turn (``tool`` or ``user`` role) through the tokenizer's chat template,
  by a fixed-base diff: the template renders a fixed two-message base with and without the new
  turn, and the extra ids (separators and the next assistant header included) are the observation.
  When the model's turn ended on a stop string instead of its end-of-turn token, the template's
  end-of-turn ids (e.g. ``<|im_end|>\\n``) are appended first, masked; after an end-of-turn token
  the rest of the separator (``\\n``) is.
"""

from __future__ import annotations

from typing import Literal

_BASE = [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]


class InlineRenderer:
    def __init__(self, tokenizer, *, template: str = " <result>\n{text}\n</result>") -> None:
        self.tokenizer, self.template = tokenizer, template

    def end_of_turn(self, sampled_ids: list[int]) -> list[int]:
        return []  # the model's turn continues after the result

    def observation(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(self.template.format(text=text), add_special_tokens=False))


class ChatRenderer:
    def __init__(self, tokenizer, *, role: Literal["tool", "user"] = "tool") -> None:
        self.tokenizer, self.role = tokenizer, role
        base = self._ids(_BASE, generation_prompt=False)
        head = self._ids(_BASE[:1], generation_prompt=True)  # ... <|im_start|>assistant\n
        body = list(tokenizer.encode(_BASE[1]["content"], add_special_tokens=False))
        if base[: len(head) + len(body)] != head + body:
            raise ValueError("chat renderer: the chat template does not render the assistant turn as header + content")
        self.eot = base[len(head) + len(body) :]  # what the template puts after an assistant message
        self._base = base

    def _ids(self, messages: list[dict], *, generation_prompt: bool) -> list[int]:
        ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=generation_prompt, tokenize=True)
        if isinstance(ids, dict) or hasattr(ids, "input_ids"):
            ids = ids["input_ids"]
        return list(ids)

    def end_of_turn(self, sampled_ids: list[int]) -> list[int]:
        """The end-of-turn ids the model did not sample itself (all of them after a stop string)."""
        for k in range(min(len(self.eot), len(sampled_ids)), 0, -1):
            if sampled_ids[-k:] == self.eot[:k]:
                return self.eot[k:]
        return list(self.eot)

    def observation(self, text: str) -> list[int]:
        full = self._ids([*_BASE, {"role": self.role, "content": text}], generation_prompt=True)
        if full[: len(self._base)] != self._base:
            raise ValueError("chat renderer: the chat template renders earlier turns differently once a turn is added")
        return full[len(self._base) :]


RENDERERS = {"inline": InlineRenderer, "chat": ChatRenderer}


def make_renderer(kind: str, tokenizer, **params):
    """``RENDERERS[kind](tokenizer, **params)`` (``chat`` takes ``role``)."""
    if kind not in RENDERERS:
        raise ValueError(f"unknown renderer {kind!r}; known: {', '.join(RENDERERS)}")
    return RENDERERS[kind](tokenizer, **params)
