"""examples/custom_loop.py runs as a user would run it: its own loop, an inline reward."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_custom_loop_example_trains_and_saves(tiny_llama, tmp_path):
    overrides = [
        f"model.path={tiny_llama}", f"output_dir={tmp_path}", "trainer.total_steps=2", "trainer.prompts_per_step=2",
        "rollout.group_size=4", "rollout.max_new_tokens=8", "rollout.kv_cache_gb=0.25", "learner.micro_batch_size=8",
    ]
    proc = subprocess.run([sys.executable, "examples/custom_loop.py", *overrides],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    steps = re.findall(r"step (\d): reward ([\d.]+), loss (-?[\d.]+), logprob diff ([\d.e+-]+)", proc.stdout)
    assert [s[0] for s in steps] == ["1", "2"], proc.stdout
    assert all(float(s[3]) < 1e-3 for s in steps)
    saved = Path(re.search(r"saved (\S+)", proc.stdout).group(1))
    assert (saved / "model.safetensors").is_file() and (saved / "trainer_state.json").is_file()
