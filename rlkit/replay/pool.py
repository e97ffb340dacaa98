"""RLEP experience pools: verified responses per prompt (algorithms.md section 10).

RLEP (arXiv 2507.07451) trains in two phases. Phase 1 samples many answers per
training prompt from a trained checkpoint and keeps the ones the verifier marks
correct (`rlkit.replay.collect`); phase 2 restarts from the base model and adds
M of them, drawn at random, to each prompt's group of fresh rollouts, so fresh
and replayed answers share one GRPO baseline (`ReplayPool.sample`).

A pool is a JSONL file, one prompt per line::

    {"prompt_key": "<sha1 of the prompt token ids>", "prompt_ids": [...],
     "responses": [{"token_ids": [...], "text": "...", "score": 1.0, "truncated": false}, ...]}

Prompts are matched by their rendered token ids, so a pool serves any run
with the same tokenizer and prompt template, in any data order.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence


def prompt_key(prompt_ids: Sequence[int]) -> str:
    """The pool's key for a prompt: sha1 of its token ids."""
    return hashlib.sha1(",".join(map(str, prompt_ids)).encode()).hexdigest()


@dataclass(frozen=True)
class PooledResponse:
    """One verified answer: the token ids as generated, their text, the verifier's score."""

    token_ids: tuple[int, ...]
    text: str
    score: float
    truncated: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"token_ids": list(self.token_ids), "text": self.text, "score": self.score, "truncated": self.truncated}


class ReplayPool:
    """Verified responses by prompt; `sample` draws without replacement."""

    def __init__(self) -> None:
        self._prompts: dict[str, list[int]] = {}
        self._responses: dict[str, list[PooledResponse]] = {}

    def __len__(self) -> int:
        """Prompts that have a pool."""
        return len(self._responses)

    @property
    def num_responses(self) -> int:
        return sum(len(r) for r in self._responses.values())

    def add(self, prompt_ids: Sequence[int], responses: Iterable[PooledResponse]) -> None:
        """Add ``responses`` to ``prompt_ids``'s pool."""
        key = prompt_key(prompt_ids)
        self._prompts[key] = list(prompt_ids)
        self._responses.setdefault(key, []).extend(responses)

    def responses(self, prompt_ids: Sequence[int]) -> list[PooledResponse]:
        return list(self._responses.get(prompt_key(prompt_ids), ()))

    def sample(self, prompt_ids: Sequence[int], k: int, rng: random.Random) -> list[PooledResponse]:
        """``k`` responses of this prompt drawn at random without replacement (all of them if fewer; none if no pool)."""
        pool = self._responses.get(prompt_key(prompt_ids), [])
        return rng.sample(pool, min(k, len(pool)))

    def save(self, path: str | Path) -> None:
        """Write the pool as JSONL (atomically: a crash leaves the old file or the new one)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        with PoolWriter(tmp) as writer:
            for key, responses in self._responses.items():
                writer.write(self._prompts[key], responses)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | Path) -> ReplayPool:
        """Read a pool written by `save`; errors name the file, line and field."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"replay pool {path} not found (write one with `rlkit collect-pool`)")
        pool = cls()
        with open(path) as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                where = f"{path}:{number}"
                try:
                    record = json.loads(line)
                except ValueError as e:
                    raise ValueError(f"{where}: not a JSON object ({e})") from None
                prompt_ids = _field(record, "prompt_ids", list, where)
                responses = [_response(r, f"{where}: responses[{i}]") for i, r in enumerate(_field(record, "responses", list, where))]
                if record.get("prompt_key", prompt_key(prompt_ids)) != prompt_key(prompt_ids):
                    raise ValueError(f"{where}: prompt_key does not match prompt_ids")
                pool.add(prompt_ids, responses)
        return pool


class PoolWriter:
    """Writes a pool one prompt at a time, flushing each line: a run cut short leaves a valid, shorter pool."""

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "w")
        self.prompts = 0
        self.responses = 0

    def write(self, prompt_ids: Sequence[int], responses: Sequence[PooledResponse]) -> None:
        line = {"prompt_key": prompt_key(prompt_ids), "prompt_ids": list(prompt_ids),
                "responses": [r.to_dict() for r in responses]}  # fmt: skip
        self._file.write(json.dumps(line) + "\n")
        self._file.flush()
        self.prompts += 1
        self.responses += len(responses)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> PoolWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _field(record: Any, name: str, kind: type, where: str) -> Any:
    if not isinstance(record, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(record).__name__}")
    if name not in record:
        raise ValueError(f"{where}: missing field {name!r}")
    value = record[name]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ValueError(f"{where}: field {name!r} must be a {kind.__name__}, got {type(value).__name__}")
    return value


def _response(record: Any, where: str) -> PooledResponse:
    token_ids = _field(record, "token_ids", list, where)
    if not token_ids or not all(isinstance(t, int) and not isinstance(t, bool) for t in token_ids):
        raise ValueError(f"{where}: field 'token_ids' must be a non-empty list of ints")
    if "score" not in record:
        raise ValueError(f"{where}: missing field 'score'")
    score = record["score"]
    if isinstance(score, bool) or not isinstance(score, (int, float)):
        raise ValueError(f"{where}: field 'score' must be a number, got {type(score).__name__}")
    return PooledResponse(
        token_ids=tuple(token_ids), text=str(record.get("text", "")), score=float(score),
        truncated=bool(record.get("truncated", False)),
    )  # fmt: skip
