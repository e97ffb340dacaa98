"""Per-prompt sampling seeds: the documented formula, and each engine shard keeps its prompts' seeds."""

from __future__ import annotations

import hashlib

from rlkit.rollout.types import SamplingConfig, sampling_seed


def test_sampling_seed_is_the_documented_formula():
    digest = hashlib.blake2b(b"0/3/1", digest_size=8).digest()
    assert sampling_seed(0, 3, 1) == int.from_bytes(digest, "big") >> 2
    assert sampling_seed(0, 3, 1) == 762_760_438_070_338_487
    seeds = {sampling_seed(seed, step, k) for seed in (0, 1) for step in range(1, 51) for k in range(64)}
    assert len(seeds) == 2 * 50 * 64  # every (seed, step, prompt) its own
    assert max(seeds) < 2**62  # seed + j (vLLM's j-th sample) stays below 2**63


def test_shards_keep_their_prompts_seeds():
    cfg = SamplingConfig(n=4, seeds=(10, 11, 12, 13, 14))
    shard = cfg.for_prompts([1, 3])
    assert shard.seeds == (11, 13) and shard.n == 4
    assert [shard.prompt_seed(i) for i in range(2)] == [11, 13]
    assert SamplingConfig(seed=5).for_prompts([0, 2]).prompt_seed(1) == 5  # one seed for the whole call
    assert SamplingConfig().prompt_seed(0) is None
