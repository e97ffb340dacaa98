"""Exact resume: a run killed with SIGKILL after step 2 and resumed from its step-2 checkpoint
samples and trains step 3 exactly as the uninterrupted run does.

Every prompt's samples come from the seed ``sampling_seed(seed, step, k)`` (rlkit/rollout/types.py),
not from the engine's global generator, so a restarted engine draws the same tokens.

Three ``rlkit`` runs of the same config (tiny model, 1 engine, world size 1, 4 prompts x 4):
A runs 3 steps; B is killed (SIGKILL, its whole process group) once its step-2 checkpoint is
written; C resumes from B's step 2 and runs step 3. A script around ``Trainer`` records each
step's prompts and completion token ids.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from testkit import kill_process_group

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]

RECORDING_RUN = """
import json, sys
from rlkit import Trainer, load_config

if __name__ == "__main__":
    config = load_config(sys.argv[2], overrides=sys.argv[3:])
    record = open(sys.argv[1], "a")
    trainer = Trainer(config)
    generate = trainer.generate

    def recorded(rows, **kwargs):
        out = generate(rows, **kwargs)
        record.write(json.dumps({"step": trainer.step, "prompts": out.prompt_ids,
                                 "tokens": [c.token_ids for c in out.completions]}) + "\\n")
        record.flush()
        return out

    trainer.generate = recorded
    with trainer:
        trainer.fit()
"""

NOT_COMPARED = ("time/", "throughput/", "memory/")  # measurements of the machine, not of the step
MEASURED = ("_s", "_mib", "_gib")  # durations and memory, e.g. sync/send_s


def _compared(record: dict) -> dict:
    return {k: v for k, v in record.items() if not k.startswith(NOT_COMPARED) and not k.endswith(MEASURED)}


def _start(script: Path, record: Path, overrides: list[str], log: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT), RAY_DEDUP_LOGS="0")
    cmd = [sys.executable, str(script), str(record), "examples/arithmetic_grpo.yaml", *overrides]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)



def _wait(proc: subprocess.Popen, log: Path, timeout: float) -> None:
    try:
        rc = proc.wait(timeout=timeout)
    finally:
        kill_process_group(proc)  # whatever the run left behind in its own process group
    assert rc == 0, log.read_text()[-4000:]


def _records(path: Path) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = {}
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        out.setdefault(rec["step"], []).append(rec)
    return out


def _metrics(run_dir: Path) -> dict[int, dict]:
    return {m["step"]: m for m in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())}


def test_resumed_run_repeats_step_3_exactly(tiny_llama, parity_reward_module, tiny_run_overrides, tmp_path):
    script = tmp_path / "recording_run.py"
    script.write_text(RECORDING_RUN)
    base = [
        *tiny_run_overrides(tiny_llama, tmp_path / "unused", parity_reward_module, "resume"),
        "trainer.total_steps=3", "trainer.save_every=1", "learner.world_size=1", "learner.threads=1",
        "rollout.threads=1", "rollout.num_engines=1", "trainer.prompts_per_step=4", "seed=11",
    ]  # fmt: skip
    runs = {name: tmp_path / name for name in "abc"}
    a = _start(script, tmp_path / "a.jsonl", [*base, f"output_dir={runs['a']}"], tmp_path / "a.log")
    b = _start(script, tmp_path / "b.jsonl", [*base, f"output_dir={runs['b']}"], tmp_path / "b.log")
    step_2 = runs["b"] / "resume" / "checkpoints" / "step_2"
    try:
        deadline = time.monotonic() + 900
        while not (step_2 / "trainer_state.json").is_file():  # written last: the checkpoint is complete
            assert b.poll() is None, (tmp_path / "b.log").read_text()[-4000:]
            assert time.monotonic() < deadline, "run B wrote no step-2 checkpoint in 900 s"
            time.sleep(0.2)
    finally:
        kill_process_group(b)
    assert not (runs["b"] / "resume" / "checkpoints" / "step_3").exists()  # killed before its step 3 ended
    _wait(a, tmp_path / "a.log", timeout=900)
    c = _start(script, tmp_path / "c.jsonl", [*base, f"output_dir={runs['c']}", f"trainer.resume_from={step_2}"],
               tmp_path / "c.log")
    _wait(c, tmp_path / "c.log", timeout=900)

    rec_a, rec_b, rec_c = _records(tmp_path / "a.jsonl"), _records(tmp_path / "b.jsonl"), _records(tmp_path / "c.jsonl")
    assert sorted(rec_a) == [1, 2, 3] and sorted(rec_c) == [3]
    assert rec_b[1] == rec_a[1] and rec_b[2] == rec_a[2]  # the killed run had sampled what A sampled
    assert rec_c[3] == rec_a[3]  # same prompts, same completions, token for token
    tokens = [t for r in rec_a[3] for t in r["tokens"]]
    assert len(tokens) == 16 and len({tuple(t) for t in tokens}) > 1  # 4 prompts x 4 samples, not all alike

    metrics_a, metrics_c = _metrics(runs["a"] / "resume"), _metrics(runs["c"] / "resume")
    assert sorted(metrics_c) == [3]
    compared, resumed = _compared(metrics_a[3]), _compared(metrics_c[3])
    assert {"loss", "grad_norm", "reward/mean", "rollout/logprob_diff", "actor/entropy"} <= set(compared)
    assert compared.keys() == resumed.keys()
    for key, value in compared.items():
        if isinstance(value, (int, float)):
            assert resumed[key] == pytest.approx(value, abs=1e-6), key
        else:
            assert resumed[key] == value, key
