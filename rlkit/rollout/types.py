"""Plain data passed between the driver and the rollout engines (no vLLM import)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace


def sampling_seed(seed: int, step: int, prompt: int) -> int:
    """The vLLM sampling seed of prompt ``prompt`` (its index among the prompts drawn in ``step``)::

        sampling_seed = int.from_bytes(blake2b(f"{seed}/{step}/{prompt}", digest_size=8)) >> 2

    vLLM 0.32 gives the j-th of a request's ``n`` samples the seed ``sampling_seed + j``
    (``vllm/v1/engine/parallel_sampling.py``), and a seeded request draws from its own
    generator. Measured with the embedded model (``tests/e2e/test_sampling_seeds.py`` keeps it
    checked): the n samples are distinct, and a prompt's samples are the same token for token
    alone or in another batch, in another order, and after an engine restart with another
    engine seed. So a run resumed from a checkpoint samples exactly what the uninterrupted
    run sampled at the same step. The 62-bit value leaves room for ``+ j`` below 2**63.
    """
    digest = hashlib.blake2b(f"{int(seed)}/{int(step)}/{int(prompt)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 2


def turn_seed(prompt_seed: int, sample: int, turn: int) -> int:
    """The vLLM seed of turn ``turn`` (0-based) of sample ``sample`` of a multi-turn rollout whose
    prompt has the seed ``prompt_seed`` (:func:`sampling_seed` of its seed, step and prompt index)::

        turn 0:       prompt_seed + sample   (what vLLM gives the sample-th of n samples, so a first
                                              turn samples exactly what single-turn generation does)
        turn t >= 1:  int.from_bytes(blake2b(f"{prompt_seed}/{sample}/{t}", digest_size=8)) >> 2

    So every turn's request is seeded by (seed, step, prompt index, sample index, turn) alone: a
    resumed run regenerates the same trajectories, whatever engine or batch a request lands in.
    """
    if turn == 0:
        return int(prompt_seed) + int(sample)
    digest = hashlib.blake2b(f"{int(prompt_seed)}/{int(sample)}/{int(turn)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 2


@dataclass(frozen=True)
class SamplingConfig:
    """What one ``generate`` call samples: ``n`` completions per prompt.

    ``seeds`` (one per prompt, see :func:`sampling_seed`) makes every prompt's samples a
    function of its seed alone; otherwise ``seed`` (one for the whole call) or none.
    """

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    max_new_tokens: int = 32
    stop: tuple[str, ...] = ()
    seed: int | None = None
    ignore_eos: bool = False  # fixed-length outputs (benchmarks)
    top_logprobs: int = 0  # also return the top-k log-probs of each step (ARPO's entropy); 0: none
    include_stop: bool = False  # keep a matched stop string in the output (multi-turn tool tags)
    seeds: tuple[int, ...] | None = None
    max_tokens: tuple[int, ...] | None = None  # one per prompt, overriding max_new_tokens (multi-turn budgets)
    ns: tuple[int, ...] | None = None  # one per prompt, overriding n (a multi-turn first turn: a prompt's samples in one request)

    def prompt_seed(self, index: int) -> int | None:
        """The seed of the call's prompt ``index``."""
        return self.seeds[index] if self.seeds is not None else self.seed

    def prompt_max_tokens(self, index: int) -> int:
        """The token budget of the call's prompt ``index``."""
        return self.max_tokens[index] if self.max_tokens is not None else self.max_new_tokens

    def prompt_n(self, index: int) -> int:
        """The number of samples of the call's prompt ``index``."""
        return self.ns[index] if self.ns is not None else self.n

    def for_prompts(self, indices: list[int]) -> SamplingConfig:
        """This config for the subset ``indices`` of the prompts (an engine's shard)."""
        per_prompt = {k: getattr(self, k) for k in ("seeds", "max_tokens", "ns") if getattr(self, k) is not None}
        return replace(self, **{k: tuple(v[i] for i in indices) for k, v in per_prompt.items()})


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
