"""examples/custom_loop.py runs as a user would run it: the object API (inline rewards in the reward
workers, Python rows, eval rows, callbacks that stop the run), ``trainer.step()``, validation and
sample logging, all on a real vLLM engine and FSDP2 learner."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_custom_loop_example_trains_validates_stops_and_saves(tiny_llama, tmp_path):
    overrides = [
        f"model.path={tiny_llama}", f"output_dir={tmp_path}", "trainer.total_steps=3", "trainer.prompts_per_step=2",
        "rollout.group_size=4", "rollout.max_new_tokens=8", "rollout.kv_cache_gb=0.25", "learner.micro_batch_size=8",
        "eval.every=2", "eval.prompts=3", "eval.samples=2", "log.samples_every=1", "log.samples_prompts=1",
    ]
    proc = subprocess.run([sys.executable, "examples/custom_loop.py", *overrides, "--patience", "1"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    steps = re.findall(r"step (\d): reward ([\d.]+), loss (-?[\d.]+), logprob diff ([\d.e+-]+)", out)
    # A random model never writes the right "Answer: N": reward 0 at step 1 and 2, so patience 1 stops
    # the run after step 2 of 3.
    assert [s[0] for s in steps] == ["1", "2"], out
    assert [float(s[1]) for s in steps] == [0.0, 0.0]
    assert all(float(s[3]) < 1e-3 for s in steps)  # the engine samples with the learner's weights
    assert "stopped after step 2: no reward improvement for 1 steps" in out
    assert re.search(r"eval after step 2: mean@k 0.000, pass@k 0.000, greedy 0.000", out), out
    saved = Path(re.search(r"saved (\S+)", out).group(1))
    assert saved == tmp_path / "custom_loop" / "checkpoints" / "step_2"
    assert f"checkpoint {saved}" in out  # on_checkpoint fired
    assert (saved / "trainer_state.json").is_file() and not list(saved.parent.glob("*.tmp-*"))

    run_dir = tmp_path / "custom_loop"
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2]
    assert "eval/mean@k" not in metrics[0]
    assert {k: metrics[1][k] for k in ("eval/mean@k", "eval/pass@k", "eval/greedy")} == {
        "eval/mean@k": 0.0, "eval/pass@k": 0.0, "eval/greedy": 0.0}
    assert 1 <= metrics[1]["eval/length_mean"] <= 8
    # the inline rewards are the run's reward components
    assert metrics[0]["reward/correct_answer/mean"] == 0.0 and metrics[0]["reward/brevity/mean"] == 0.0
    assert metrics[0]["reward/correct_answer/errors"] == 0.0

    samples = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert [s["step"] for s in samples] == [1, 1, 1, 1, 2, 2, 2, 2]  # one group of 4 per step
    assert len({s["prompt"] for s in samples if s["step"] == 1}) == 1
    assert re.fullmatch(r"What is \d+ \+ \d+\?", samples[0]["prompt"])
    assert all(s["reward"] == 0.0 and s["advantage"] == 0.0 and 1 <= s["length"] <= 8 for s in samples)
