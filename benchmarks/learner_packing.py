"""One learner step (forward + backward + AdamW step), padded against packed micro-batches, side by side.

The batch: ``--sequences`` sequences of a ``--prompt-len``-token prompt and a response whose
length is drawn (seed 0) from a lognormal with median ``--median`` and sigma ``--sigma``,
clipped to [4, ``--max-len``] (issue 14's long tail: median 96, max 1024 by default).
Token ids are random (the step's cost does not depend on them). One FSDP2 learner rank
(gloo) on ``--model``, fp32, ``--micro-batch-size`` rows per micro-batch in both paths:

- padded: each micro-batch padded to its longest sequence (``learner.packing=false``);
- packed: each micro-batch one row of its sequences end to end (``learner.packing=true``).

Printed: real tokens/s of each step (padding not counted), the ratio packed / padded
(target >= 1.5), the largest log-prob difference of the two paths on the same weights
(target < 1e-5), and each path's peak RSS above the RSS before its step (VmHWM; freed heap is
returned to the OS with ``malloc_trim`` first, so one path's peak does not hide in the other's
retained memory).
Runs alternate (padded, packed, padded, ...) so machine load hits both alike.
Usage: python benchmarks/learner_packing.py [--sequences 32 --median 96 --max-len 1024 --repeats 2]
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import math
import statistics
import time

import _common  # noqa: F401  (thread settings)


def release_freed_heap() -> None:
    """Give glibc's freed heap pages back to the OS, so RSS before a step is what is live."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


def _batch(args):
    import torch

    from rlkit.batch import build_batch

    g = torch.Generator().manual_seed(0)
    raw = torch.exp(math.log(args.median) + args.sigma * torch.randn(args.sequences, generator=g))
    lengths = raw.round().clamp(4, args.max_len).long().tolist()
    prompts = [torch.randint(10, 40000, (args.prompt_len,), generator=g).tolist() for _ in lengths]
    responses = [torch.randint(10, 40000, (n,), generator=g).tolist() for n in lengths]
    batch = build_batch(
        prompt_ids=prompts, response_ids=responses, rollout_logprobs=[[-1.0] * n for n in lengths],
        group_ids=[i // 4 for i in range(len(lengths))], rewards=[0.0] * len(lengths),
        advantages=torch.linspace(-1, 1, len(lengths)), pad_token_id=0,
    )  # fmt: skip
    return batch, lengths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded:smollm2-135m-instruct")
    parser.add_argument("--sequences", type=int, default=32)
    parser.add_argument("--prompt-len", type=int, default=64)
    parser.add_argument("--median", type=float, default=96)
    parser.add_argument("--sigma", type=float, default=1.0)
    parser.add_argument("--max-len", type=int, default=1024)
    parser.add_argument("--micro-batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    import torch

    from rlkit.algorithm_config import AlgorithmConfig
    from rlkit.config import LearnerConfig, ModelConfig
    from rlkit.learner.worker import LearnerSpec, LearnerWorker, free_port
    from rlkit.models import resolve_model_path
    from rlkit.rollout.transport.stream import reset_peak_rss, rss_bytes

    batch, lengths = _batch(args)
    real = int(batch.attention_mask.sum())
    padded_cost = sum(
        len(lengths[i : i + args.micro_batch_size]) * (args.prompt_len + max(lengths[i : i + args.micro_batch_size]))
        for i in range(0, len(lengths), args.micro_batch_size)
    )
    print(f"learner step on {args.model}: {args.sequences} sequences, prompt {args.prompt_len} tokens, response "
          f"lengths lognormal(median {args.median:g}, sigma {args.sigma:g}) clipped to [4, {args.max_len}]: "
          f"min {min(lengths)}, median {statistics.median(lengths):g}, max {max(lengths)}; {real} real tokens, "
          f"{padded_cost} computed when padded ({args.micro_batch_size} rows per micro-batch)")  # fmt: skip
    spec = LearnerSpec(
        model=ModelConfig(path=str(resolve_model_path(args.model))),
        learner=LearnerConfig(world_size=1, backend="gloo", micro_batch_size=args.micro_batch_size, lr=1e-7),
        algorithm=AlgorithmConfig(), temperature=1.0, total_steps=1, norm_len=args.max_len,
    )  # fmt: skip
    worker = LearnerWorker(rank=0, world_size=1, spec=spec)
    worker.setup("127.0.0.1", free_port())
    modes = {"padded": False, "packed": True}

    def use(packing: bool) -> None:
        worker.spec = dataclasses.replace(spec, learner=spec.learner.model_copy(update={"packing": packing}))
        worker._packed = None

    logprobs = {}
    for label, packing in modes.items():
        use(packing)
        logprobs[label] = worker.compute_logprobs(batch, with_entropy=False)["logprobs"]
    # The fp32 noise floor: each sequence alone (one row per micro-batch: no padding, no packing).
    worker.spec = dataclasses.replace(spec, learner=spec.learner.model_copy(update={"packing": False, "micro_batch_size": 1}))
    worker._packed = None
    alone = worker.compute_logprobs(batch, with_entropy=False)["logprobs"]
    valid = batch.response_mask > 0
    diffs = {
        "packed - padded": (logprobs["packed"] - logprobs["padded"]).abs()[valid],
        "padded - alone": (logprobs["padded"] - alone).abs()[valid],
        "packed - alone": (logprobs["packed"] - alone).abs()[valid],
    }

    rates: dict[str, list[float]] = {label: [] for label in modes}
    cpu_rates: dict[str, list[float]] = {label: [] for label in modes}  # per CPU-second: less load-sensitive
    peaks: dict[str, list[float]] = {label: [] for label in modes}
    for repeat in range(args.repeats):
        for label, packing in modes.items():
            use(packing)
            release_freed_heap()
            base = rss_bytes()
            reset_peak_rss()
            started, cpu_started = time.perf_counter(), time.process_time()
            worker.train_mini_batch(batch, **batch.loss_totals())
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
            rates[label].append(real / seconds)
            cpu_rates[label].append(real / cpu)
            peaks[label].append((rss_bytes("VmHWM") - base) / 2**20)
            print(f"  run {repeat + 1}/{args.repeats} {label}: {seconds:.1f} s, {real / seconds:.0f} tokens/s, "
                  f"{cpu:.1f} CPU s", flush=True)
    worker.shutdown()
    for label in modes:
        print(f"  {label:<8} tokens/s median {statistics.median(rates[label]):8.1f}  runs {[round(r, 1) for r in rates[label]]}"
              f"  peak extra RSS {max(peaks[label]):7.0f} MiB")  # fmt: skip
    ratio = statistics.median(rates["packed"]) / statistics.median(rates["padded"])
    print(f"  ratio packed / padded tokens/s = {ratio:.2f} (target >= 1.5)")
    cpu_ratio = statistics.median(cpu_rates["packed"]) / statistics.median(cpu_rates["padded"])
    print(f"  ratio packed / padded tokens per CPU-second = {cpu_ratio:.2f} (the process's CPU time: what other "
          "load on the machine changes least)")
    for name, d in diffs.items():
        print(f"  |log-prob {name}|: max {float(d.max()):.2e}, mean {float(d.mean()):.2e}"
              + ("  (target < 1e-5)" if name == "packed - padded" else ""))
    print("  (alone: each sequence in its own micro-batch, neither padded nor packed: the fp32 noise floor)")


if __name__ == "__main__":
    main()
