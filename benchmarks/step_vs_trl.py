"""Seconds per GRPO step: rlkit vs TRL's ``GRPOTrainer``, same model, data and settings.

Embedded SmolLM2-135M-Instruct, fp32, built-in arithmetic with the demo's one-shot
prompt, 8 prompts x 4 samples, 64 new tokens, one optimizer step per batch, no KL.
Each side runs in its own subprocess, one after the other (never at once); the
first step of each is warm-up and left out of the median. Target: ratio <= 0.5.

    python benchmarks/step_vs_trl.py [--steps 4]      # needs: pip install -e ".[bench]"
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROMPTS, SAMPLES, NEW_TOKENS, LR = 8, 4, 64, 1e-5
FEW_SHOT = [{"role": "user", "content": "What is 7 + 5?"}, {"role": "assistant", "content": "7 + 5 = 12\nAnswer: 12"}]


def run_rlkit(steps: int, out: Path) -> list[float]:
    from rlkit import Trainer, load_config

    cfg = load_config("examples/arithmetic_grpo.yaml", overrides=[
        f"output_dir={out}", "name=bench", f"trainer.total_steps={steps}", "trainer.save_final=false",
        "trainer.overwrite=true", "trainer.save_every=0",
        f"trainer.prompts_per_step={PROMPTS}", f"rollout.group_size={SAMPLES}", f"rollout.max_new_tokens={NEW_TOKENS}",
        f"learner.lr={LR}", "learner.world_size=1", "learner.micro_batch_size=8",
    ])
    with Trainer(cfg) as trainer:
        trainer.fit()
    records = [json.loads(line) for line in (out / "bench" / "metrics.jsonl").read_text().splitlines()]
    return [r["time/step_s"] for r in records]


def run_trl(steps: int, out: Path) -> list[float]:
    import re

    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from rlkit.data.builtin import arithmetic
    from rlkit.models import resolve_model_path

    rows = arithmetic(num_examples=PROMPTS * steps, seed=1234)
    data = Dataset.from_list([{"prompt": FEW_SHOT + [{"role": "user", "content": r["prompt"]}], "answer": r["answer"]} for r in rows])

    def reward(completions, answer, **_):
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        return [float(bool(m := re.findall(r"Answer:\s*(-?\d+)", t)) and m[-1] == a) for t, a in zip(texts, answer)]

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.times, self.start = [], 0.0

        def on_step_begin(self, *args, **kwargs):
            self.start = time.perf_counter()

        def on_step_end(self, *args, **kwargs):
            self.times.append(time.perf_counter() - self.start)

    timer = StepTimer()
    args = GRPOConfig(
        output_dir=str(out), per_device_train_batch_size=PROMPTS * SAMPLES, num_generations=SAMPLES,
        max_completion_length=NEW_TOKENS, max_steps=steps, learning_rate=LR, beta=0.0, use_cpu=True,
        bf16=False, logging_steps=1, save_strategy="no", report_to="none", temperature=1.0, shuffle_dataset=False,
    )
    trainer = GRPOTrainer(model=str(resolve_model_path("embedded:smollm2-135m-instruct")), reward_funcs=reward,
                          args=args, train_dataset=data, callbacks=[timer])
    trainer.train()
    return timer.times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--side", choices=["rlkit", "trl"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        with tempfile.TemporaryDirectory() as tmp:
            times = (run_rlkit if args.side == "rlkit" else run_trl)(args.steps, Path(tmp))
        print("STEP_TIMES " + json.dumps(times), flush=True)
        return
    results = {}
    for side in ("trl", "rlkit"):
        proc = subprocess.run([sys.executable, __file__, "--side", side, "--steps", str(args.steps)],
                              capture_output=True, text=True)
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("STEP_TIMES ")]
        if proc.returncode or not line:
            sys.exit(f"{side} run failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
        results[side] = json.loads(line[0].removeprefix("STEP_TIMES "))
    print(f"GRPO step, {PROMPTS} prompts x {SAMPLES} samples, {NEW_TOKENS} new tokens, fp32, embedded model")
    medians = {}
    for side, times in results.items():
        medians[side] = statistics.median(times[1:] or times)
        print(f"  {side:<6} median {medians[side]:6.1f} s/step (warm-up step excluded)  all {[round(t, 1) for t in times]}")
    print(f"  ratio rlkit / trl = {medians['rlkit'] / medians['trl']:.3f}")


if __name__ == "__main__":
    main()
