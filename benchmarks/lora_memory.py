"""Learner memory, full fine-tune against LoRA, side by side: one FSDP2 learner rank (gloo), fresh process each.

Each mode runs in its own process (so each peak RSS counts only itself): build the learner on
``--model`` (fp32, gradient checkpointing as the demo), then ``--steps`` optimizer steps on one batch
the size of the demo's (``--sequences`` sequences of a ``--prompt-len``-token prompt and a
``--response-len``-token response). Printed per mode: trainable parameters, AdamW state bytes,
process peak RSS (VmHWM, model load included), peak RSS above the RSS after setup, the median step
time; then the ratios LoRA / full. The modes run back to back (full, LoRA) in one invocation.
Usage: python benchmarks/lora_memory.py [--rank 32 --sequences 32 --steps 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import _common  # noqa: F401  (thread settings)


def _batch(args):
    import torch

    from rlkit.batch import build_batch

    g = torch.Generator().manual_seed(0)
    prompts = [torch.randint(10, 40000, (args.prompt_len,), generator=g).tolist() for _ in range(args.sequences)]
    responses = [torch.randint(10, 40000, (args.response_len,), generator=g).tolist() for _ in range(args.sequences)]
    return build_batch(
        prompt_ids=prompts, response_ids=responses, rollout_logprobs=[[-1.0] * args.response_len] * args.sequences,
        group_ids=[i // 4 for i in range(args.sequences)], rewards=[0.0] * args.sequences,
        advantages=torch.linspace(-1, 1, args.sequences), pad_token_id=0,
    )  # fmt: skip


def run_mode(args) -> dict:
    """One mode in this process; returns its numbers."""
    from rlkit.algorithm_config import AlgorithmConfig
    from rlkit.config import LearnerConfig, LoraConfig, ModelConfig
    from rlkit.learner.worker import LearnerSpec, LearnerWorker, free_port
    from rlkit.models import resolve_model_path
    from rlkit.rollout.transport.stream import rss_bytes

    lora = LoraConfig(rank=args.rank, alpha=args.rank) if args.mode == "lora" else None
    spec = LearnerSpec(
        model=ModelConfig(path=str(resolve_model_path(args.model)), gradient_checkpointing=True, lora=lora),
        learner=LearnerConfig(world_size=1, backend="gloo", micro_batch_size=args.micro_batch_size, lr=1e-6),
        algorithm=AlgorithmConfig(), temperature=1.0, total_steps=args.steps, norm_len=args.response_len,
    )  # fmt: skip
    worker = LearnerWorker(rank=0, world_size=1, spec=spec)
    info = worker.setup("127.0.0.1", free_port())
    after_setup = rss_bytes()
    batch = _batch(args)
    seconds = []
    for _ in range(args.steps):
        started = time.perf_counter()
        worker.train_mini_batch(batch, **batch.loss_totals())
        seconds.append(time.perf_counter() - started)
    state_bytes = sum(t.numel() * t.element_size() for s in worker.optimizer.state.values() for t in s.values()
                      if hasattr(t, "numel") and t.dim() > 0)  # fmt: skip
    peak = rss_bytes("VmHWM")
    worker.shutdown()
    return {
        "mode": args.mode, "trainable_params": info["trainable_params_local"], "params": info["params_local"],
        "optimizer_state_bytes": state_bytes, "peak_rss_bytes": peak, "peak_above_setup_bytes": peak - after_setup,
        "step_s": statistics.median(seconds),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded:smollm2-135m-instruct")
    parser.add_argument("--rank", type=int, default=32)
    parser.add_argument("--sequences", type=int, default=32)
    parser.add_argument("--prompt-len", type=int, default=80)
    parser.add_argument("--response-len", type=int, default=32)
    parser.add_argument("--micro-batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--mode", choices=["full", "lora"], help=argparse.SUPPRESS)  # a child process
    args = parser.parse_args()
    if args.mode:
        print("RESULT " + json.dumps(run_mode(args)), flush=True)
        return

    print(f"learner steps on {args.model}: {args.sequences} sequences of {args.prompt_len} + {args.response_len} "
          f"tokens, {args.steps} AdamW steps, fp32, gradient checkpointing; LoRA rank {args.rank} on every linear layer",
          flush=True)  # fmt: skip
    results = {}
    for mode in ("full", "lora"):
        started = time.perf_counter()
        child = [sys.executable, __file__, *sys.argv[1:], "--mode", mode]
        proc = subprocess.run(child, capture_output=True, text=True, check=False)
        line = next((l for l in proc.stdout.splitlines() if l.startswith("RESULT ")), None)
        if line is None:
            raise SystemExit(f"{mode} run failed:\n{proc.stderr[-4000:]}")
        results[mode] = json.loads(line.removeprefix("RESULT "))
        print(f"  {mode} done in {time.perf_counter() - started:.0f} s", flush=True)
    mib = 2**20
    print(f"  {'':<5} {'trainable':>12} {'AdamW state MiB':>16} {'peak RSS MiB':>13} {'peak above setup MiB':>21} {'step s':>7}")
    for mode, r in results.items():
        print(f"  {mode:<5} {r['trainable_params']:>12,.0f} {r['optimizer_state_bytes'] / mib:>16.1f} "
              f"{r['peak_rss_bytes'] / mib:>13.0f} {r['peak_above_setup_bytes'] / mib:>21.0f} {r['step_s']:>7.1f}")  # fmt: skip
    full, lora = results["full"], results["lora"]
    print(f"  ratio lora / full: trainable {lora['trainable_params'] / full['trainable_params']:.4f}, AdamW state "
          f"{lora['optimizer_state_bytes'] / full['optimizer_state_bytes']:.4f}, peak RSS "
          f"{lora['peak_rss_bytes'] / full['peak_rss_bytes']:.2f}, peak above setup "
          f"{lora['peak_above_setup_bytes'] / max(full['peak_above_setup_bytes'], 1):.2f}, step time "
          f"{lora['step_s'] / full['step_s']:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
