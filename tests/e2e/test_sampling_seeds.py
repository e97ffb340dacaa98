"""What vLLM 0.32 does with a per-request seed, which exact resume relies on (rlkit/rollout/types.py).

One seeded request with ``n`` samples gives n distinct samples, the j-th drawn with seed
``seed + j``; a prompt's samples do not depend on the other prompts in the batch or their
order, and an engine started again (another process, another engine seed) repeats them.
Two engine processes on the tiny model, each driving :class:`RolloutEngine` directly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, sys

if __name__ == "__main__":
    from rlkit.rollout.engine import RolloutEngine
    from rlkit.rollout.types import SamplingConfig, sampling_seed

    model, engine_seed, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    engine = RolloutEngine(model_path=model, seed=engine_seed, max_model_len=256, kv_cache_bytes=1 << 26)
    P = [[1, 510, 2657, 314], [1, 2220, 7, 9, 11], [1, 42, 43], [1, 99, 100, 101, 102]]
    s = [sampling_seed(3, 1, k) for k in range(4)]

    def gen(prompts, seeds, n):
        cfg = SamplingConfig(n=n, temperature=1.0, max_new_tokens=12, seeds=tuple(seeds))
        grouped = {}
        for c in engine.generate(prompts, cfg):
            grouped.setdefault(c.prompt_index, []).append(c.token_ids)
        return [grouped[i] for i in range(len(prompts))]

    json.dump({
        "batch": gen(P[:2], s[:2], 4),
        "alone": gen(P[:1], s[:1], 4),
        "reordered": gen([P[3], P[2], P[1], P[0]], [s[3], s[2], s[1], s[0]], 4),
        "one_each": gen([P[0]] * 4, [s[0] + j for j in range(4)], 1),
    }, open(out, "w"))
"""


def _probe(script: Path, model: Path, engine_seed: int, out: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), VLLM_ENABLE_V1_MULTIPROCESSING="0", VLLM_CPU_NUM_OF_RESERVED_CPU="0")
    done = subprocess.run([sys.executable, str(script), str(model), str(engine_seed), str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(out.read_text())


def test_seeded_requests_are_distinct_batch_independent_and_restart_safe(tiny_llama, tmp_path):
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    first = _probe(script, tiny_llama, 0, tmp_path / "first.json")
    batch = first["batch"]
    assert [len({tuple(t) for t in samples}) for samples in batch] == [4, 4]  # n samples, all distinct
    assert first["alone"][0] == batch[0]  # same samples without the other prompt
    assert first["reordered"][3] == batch[0] and first["reordered"][2] == batch[1]  # other batch, other order
    assert [t[0] for t in first["one_each"]] == batch[0]  # sample j of a request is seed + j
    restarted = _probe(script, tiny_llama, 7, tmp_path / "restarted.json")  # new process, other engine seed
    assert restarted == first


BIG_BATCH_PROBE = """
import json, sys

if __name__ == "__main__":
    from rlkit.rollout.engine import RolloutEngine
    from rlkit.rollout.types import SamplingConfig, sampling_seed

    model, out = sys.argv[1], sys.argv[3]
    engine = RolloutEngine(model_path=model, max_model_len=256, kv_cache_bytes=1 << 27)
    # 48 prompts x 2 samples x 60 prompt tokens = 5760 prefill tokens: over vLLM's 4096-token CPU
    # batch budget, so a scheduler that chunks prefills would split a seeded request.
    prompts = [[1] + [(7 * k + j) % 4000 + 10 for j in range(59)] for k in range(48)]
    seeds = tuple(sampling_seed(0, 1, k) for k in range(48))
    big = engine.generate(prompts, SamplingConfig(n=2, temperature=1.0, max_new_tokens=4, seeds=seeds))
    alone = engine.generate(prompts[-1:], SamplingConfig(n=2, temperature=1.0, max_new_tokens=4, seeds=seeds[-1:]))
    json.dump({"count": len(big), "last": [c.token_ids for c in big if c.prompt_index == 47],
               "alone": [c.token_ids for c in alone]}, open(out, "w"))
"""


def test_seeded_batch_over_the_cpu_token_budget(tiny_llama, tmp_path):
    # vLLM 0.32 rewinds a seeded request's generator when its prefill is chunked, which CPU
    # generators refuse ("CPU Generator does not use offset"): engines turn chunked prefill off on CPU.
    script = tmp_path / "big.py"
    script.write_text(BIG_BATCH_PROBE)
    result = _probe(script, tiny_llama, 0, tmp_path / "big.json")
    assert result["count"] == 96
    assert result["last"] == result["alone"]  # the last prompt, scheduled in a later batch, samples as if alone
