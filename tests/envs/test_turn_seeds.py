"""Multi-turn seeds: every turn's request seed is a function of (seed, step, prompt, sample, turn) only,
and a first turn samples with the seeds single-turn generation uses (rlkit/rollout/types.py)."""

from __future__ import annotations

import hashlib

from rlkit.rollout.types import SamplingConfig, sampling_seed, turn_seed


def test_turn_zero_is_the_single_turn_seed_of_the_sample():
    base = sampling_seed(0, 3, 1)
    assert base == 762_760_438_070_338_487  # unchanged single-turn seed (tests/test_rollout_types.py)
    assert [turn_seed(base, j, 0) for j in range(3)] == [base, base + 1, base + 2]  # vLLM's j-th of n


def test_later_turns_are_the_documented_hash():
    base = sampling_seed(0, 3, 1)
    digest = hashlib.blake2b(f"{base}/2/1".encode(), digest_size=8).digest()
    assert turn_seed(base, 2, 1) == int.from_bytes(digest, "big") >> 2
    seeds = {turn_seed(sampling_seed(0, step, k), j, t) for step in (1, 2) for k in range(16) for j in range(16) for t in range(1, 4)}
    assert len(seeds) == 2 * 16 * 16 * 3  # every (step, prompt, sample, turn) its own
    assert max(seeds) < 2**62


def test_shards_keep_their_prompts_sample_counts():
    cfg = SamplingConfig(n=1, ns=(4, 1, 2), seeds=(10, 11, 12), max_tokens=(5, 6, 7))
    shard = cfg.for_prompts([0, 2])
    assert shard.ns == (4, 2) and shard.seeds == (10, 12) and shard.max_tokens == (5, 7)
    assert [shard.prompt_n(i) for i in range(2)] == [4, 2]
    assert SamplingConfig(n=3).for_prompts([1]).prompt_n(0) == 3  # one n for the whole call
