"""A real training step with nucleus sampling: the learners' log-probs are the engine's (issue 10, finding 3).

vLLM reports ``processed_logprobs``, renormalised over the top-p/top-k tokens. If the learners
took the full softmax instead, every sampled token's log-prob would differ by about
−log(0.9) = 0.105 on the tiny random model (its distribution is nearly flat, so the nucleus
holds about 90 % of the mass); with the truncation applied they agree like the untruncated
path (< 1e-3).
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


def test_top_p_step_logprobs_match_the_engine(tiny_llama, parity_reward_module, tiny_run_overrides, tmp_path):
    from rlkit import Trainer, load_config

    overrides = tiny_run_overrides(tiny_llama, tmp_path, parity_reward_module, "top_p")
    cfg = load_config("examples/arithmetic_grpo.yaml", overrides=[
        *overrides, "rollout.top_p=0.9", "rollout.top_k=40000", "trainer.total_steps=1", "trainer.save_final=false",
        "trainer.num_mini_batches=2",
    ])  # fmt: skip
    with Trainer(cfg) as trainer:
        trainer.fit()
    (record,) = [json.loads(line) for line in (tmp_path / "top_p" / "metrics.jsonl").read_text().splitlines()]
    print({k: v for k, v in record.items() if k.startswith("rollout/")})
    assert record["rollout/logprob_diff"] < 1e-3  # vs ~0.105 with the full softmax
    assert record["rollout/mismatch_kl"] < 1e-5
    assert record["grad_norm"] > 0 and record["train/skipped_steps"] == 0
