"""``trainer.resume: auto`` after a SIGKILL mid-run, for real: ``rlkit train`` is killed (its whole
process group: driver, Ray, engine, learner) while it writes a checkpoint; the half-written
checkpoint is never picked up, and the rerun continues from the latest complete one."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from testkit import kill_process_group

from rlkit.run_dir import latest_checkpoint

pytestmark = pytest.mark.slow



def _train(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "rlkit", "train", "examples/arithmetic_grpo.yaml", *args],
                            stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def test_resume_auto_after_sigkill_during_a_checkpoint_write(tiny_llama, parity_reward_module, tiny_run_overrides,
                                                             tmp_path):
    args = [*tiny_run_overrides(tiny_llama, tmp_path, parity_reward_module, "auto"), "trainer.total_steps=4",
            "trainer.save_every=1", "trainer.keep_last=2"]
    run_dir = tmp_path / "auto"
    checkpoints = run_dir / "checkpoints"
    first = _train(args, tmp_path / "first.log")
    killed_during = None
    try:
        deadline = time.monotonic() + 900
        while killed_during is None:
            assert first.poll() is None, "the run ended before a checkpoint write could be caught:\n" + (
                tmp_path / "first.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint write seen in 900 s"
            partial = list(checkpoints.glob("step_*.tmp-*")) if checkpoints.is_dir() else []
            if partial and latest_checkpoint(checkpoints) is not None:
                os.killpg(first.pid, signal.SIGKILL)  # mid-write, with an earlier checkpoint complete
                killed_during = partial[0]
            time.sleep(0.005)
    finally:
        kill_process_group(first)
    k = int(re.match(r"step_(\d+)\.tmp-", killed_during.name).group(1))
    assert killed_during.exists() and not (checkpoints / f"step_{k}").exists()
    assert latest_checkpoint(checkpoints) == checkpoints / f"step_{k - 1}"
    logged = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert logged == list(range(1, k + 1))  # step k was logged, then killed while saving

    # Without resume the used run directory is refused before anything starts.
    refused = subprocess.run([sys.executable, "-m", "rlkit", "train", "examples/arithmetic_grpo.yaml", *args],
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2
    assert f"already holds a run (metrics.jsonl up to step {k}); set trainer.resume=auto" in refused.stderr
    assert killed_during.exists()  # a refused start changes nothing in the folder

    second = _train([*args, "trainer.resume=auto"], tmp_path / "second.log")
    try:
        rc = second.wait(timeout=900)
    finally:
        kill_process_group(second)
    log = (tmp_path / "second.log").read_text()
    assert rc == 0, log[-4000:]
    assert f"resuming {run_dir} from {checkpoints / f'step_{k - 1}'} (1 logged steps after it dropped)" in log
    assert f"deleting {killed_during}: a checkpoint write that never finished" in log
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4]  # step k redone once, no duplicates
    assert all(r["rollout/logprob_diff"] < 1e-3 for r in records)  # the rerun's engine got the checkpoint's weights
    assert sorted(p.name for p in checkpoints.iterdir()) == ["step_3", "step_4"]  # keep_last=2, no .tmp- left
    assert json.loads((checkpoints / "step_4" / "trainer_state.json").read_text())["step"] == 4
