"""A training loop of your own on rlkit's object API: a reward written inline, data as Python rows,
held-out rows for validation, callbacks that print and stop early.

    .venv/bin/python examples/custom_loop.py [key.path=value ...] [--patience N]

``Trainer(config, reward_fn=..., train_data=..., eval_data=..., callbacks=...)`` takes Python
objects where the YAML names built-ins (as TRL's ``reward_funcs``). The reward functions run in
rlkit's reward worker processes (sent there with cloudpickle), so a function defined in this
script works. Each ``trainer.step()`` runs one whole step: generate a group per prompt, score,
GRPO advantages, update the FSDP2 learners, push the new weights into vLLM, log, validate and
checkpoint on schedule; ``trainer.step`` is also the step counter.
"""

from __future__ import annotations

import random
import re
import sys

from rlkit import Trainer, load_config

ANSWER = re.compile(r"Answer:\s*(-?\d+)")


def correct_answer(completion: str, sample: dict) -> float:
    """1 for the right ``Answer: N`` (the last one in the reply)."""
    found = ANSWER.findall(completion)
    return float(bool(found) and found[-1] == sample["answer"])


def brevity(completion: str, sample: dict) -> float:
    """1 when a correct reply stays under 40 characters."""
    return float(correct_answer(completion, sample) == 1.0 and len(completion) < 40)


def sums(count: int, *, seed: int) -> list[dict]:
    """``count`` small addition problems as plain row dicts (a ``datasets.Dataset`` works too)."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        a, b = rng.randint(1, 20), rng.randint(1, 20)
        rows.append({"id": i, "prompt": f"What is {a} + {b}?", "answer": str(a + b)})
    return rows


class PrintAndStopEarly:
    """Prints each step; stops the run when the mean reward has not improved for ``patience`` steps."""

    def __init__(self, patience: int) -> None:
        self.patience, self.best, self.stale = patience, float("-inf"), 0

    def on_step_end(self, trainer: Trainer, metrics: dict) -> None:
        reward = metrics["reward/mean"]
        print(f"step {trainer.step}: reward {reward:.3f}, loss {metrics['loss']:.4f}, "
              f"logprob diff {metrics['rollout/logprob_diff']:.2e}, sync {metrics['time/sync_s']:.2f} s", flush=True)
        self.best, self.stale = (reward, 0) if reward > self.best else (self.best, self.stale + 1)
        if self.stale >= self.patience:
            trainer.request_stop(f"no reward improvement for {self.patience} steps")

    def on_eval(self, trainer: Trainer, metrics: dict) -> None:
        print(f"eval after step {trainer.step}: mean@k {metrics['eval/mean@k']:.3f}, "
              f"pass@k {metrics['eval/pass@k']:.3f}, greedy {metrics['eval/greedy']:.3f}", flush=True)

    def on_checkpoint(self, trainer: Trainer, path) -> None:
        print(f"checkpoint {path}", flush=True)


def main(argv: list[str]) -> None:
    patience = 5
    if "--patience" in argv:
        at = argv.index("--patience")
        patience, argv = int(argv[at + 1]), argv[:at] + argv[at + 2 :]
    config = load_config("examples/arithmetic_grpo.yaml", overrides=[
        "name=custom_loop", "trainer.total_steps=3", "eval.every=2", "eval.prompts=8", "trainer.overwrite=true", *argv,
    ])  # fmt: skip
    with Trainer(
        config, reward_fn=[correct_answer, (brevity, 0.1)], train_data=sums(500, seed=1), eval_data=sums(50, seed=2),
        callbacks=[PrintAndStopEarly(patience)],
    ) as trainer:
        while not trainer.done:
            trainer.step()
        if trainer.stop_reason:
            print(f"stopped after step {trainer.step}: {trainer.stop_reason}")
        print(f"saved {trainer.save_checkpoint()}")


if __name__ == "__main__":
    main(sys.argv[1:])
