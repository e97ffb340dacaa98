"""A custom RL loop on rlkit's step-level API, with a reward written inline in Python.

    .venv/bin/python examples/custom_loop.py [key.path=value ...]

Each step: draw prompts, generate a group per prompt, score them here (exact
answer plus a small bonus for short answers), compute GRPO advantages, update
the FSDP2 learners, push the new weights into vLLM.
"""

from __future__ import annotations

import re
import sys

from rlkit import Trainer, load_config

ANSWER = re.compile(r"Answer:\s*(-?\d+)")


def brief_correct_answer(completion: str, row: dict) -> float:
    """1 for the right ``Answer: N``, plus 0.1 when the whole reply stays under 40 characters."""
    found = ANSWER.findall(completion)
    correct = bool(found) and found[-1] == row["answer"]
    return float(correct) + (0.1 if correct and len(completion) < 40 else 0.0)


def main(overrides: list[str]) -> None:
    config = load_config("examples/arithmetic_grpo.yaml", overrides=["name=custom_loop", "trainer.total_steps=3", *overrides])
    with Trainer(config) as trainer:
        while trainer.step < config.trainer.total_steps:
            trainer.step += 1
            rollouts = trainer.generate(trainer.next_rows(config.trainer.prompts_per_step))
            scores = [brief_correct_answer(c.text, row) for c, row in zip(rollouts.completions, rollouts.rows)]
            rollouts.task_scores = rollouts.rewards = scores
            batch = trainer.make_batch(rollouts)
            metrics = trainer.update(batch)
            sync_s = trainer.sync_weights()
            mean = sum(scores) / len(scores)
            print(f"step {trainer.step}: reward {mean:.3f}, loss {metrics['loss']:.4f}, "
                  f"logprob diff {metrics['rollout/logprob_diff']:.2e}, sync {sync_s:.2f} s", flush=True)
        print(f"saved {trainer.save_checkpoint()}")


if __name__ == "__main__":
    main(sys.argv[1:])
