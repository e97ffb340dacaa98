"""Plain data passed between the driver and the rollout engines (no vLLM import)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SamplingConfig:
    """What one ``generate`` call samples: ``n`` completions per prompt."""

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    max_new_tokens: int = 32
    stop: tuple[str, ...] = ()
    seed: int | None = None
    ignore_eos: bool = False  # fixed-length outputs (benchmarks)


@dataclass
class Completion:
    """One sampled response: token ids as generated (never re-tokenized) and their log-probs."""

    prompt_index: int
    token_ids: list[int]
    logprobs: list[float]
    text: str
    finish_reason: str  # "stop" | "length" | "abort"
    info: dict = field(default_factory=dict)

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"
