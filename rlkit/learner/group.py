"""Driver-side handle on the FSDP2 learner ranks (Ray actors)."""

from __future__ import annotations

import math
from collections import defaultdict

import ray
import torch

from rlkit.batch import TrainBatch
from rlkit.learner.worker import LearnerSpec, LearnerWorker


class LearnerGroup:
    """``world_size`` learner actors forming one process group.

    Methods split a batch evenly over the ranks (padding with empty rows, which
    carry no loss and no gradient), call every rank, and reduce the results.
    """

    def __init__(self, spec: LearnerSpec, *, env: dict[str, str] | None = None) -> None:
        cfg = spec.learner
        self.world_size = cfg.world_size
        use_gpu = cfg.backend == "nccl" or (cfg.backend == "auto" and torch.cuda.is_available())
        threads = cfg.threads or max(1, _node_cpus() // self.world_size)
        env_vars = {"OMP_NUM_THREADS": str(threads), **(env or {})}
        actor = ray.remote(LearnerWorker).options(
            num_cpus=0 if not use_gpu else 1, num_gpus=1 if use_gpu else 0, runtime_env={"env_vars": env_vars}
        )
        self.workers = [actor.remote(rank=r, world_size=self.world_size, spec=spec) for r in range(self.world_size)]
        addr, port = ray.get(self.workers[0].address.remote())
        ray.get([w.setup.remote(addr, port) for w in self.workers])

    def _shards(self, batch: TrainBatch) -> list[TrainBatch]:
        return batch.pad_rows(self.world_size).chunks(self.world_size)

    def compute_logprobs(self, batch: TrainBatch, *, with_entropy: bool, reference: bool = False) -> dict:
        outs = ray.get([
            w.compute_logprobs.remote(shard, with_entropy=with_entropy, reference=reference)
            for w, shard in zip(self.workers, self._shards(batch))
        ])
        result = {"logprobs": torch.cat([o["logprobs"] for o in outs])[: batch.size]}
        result["entropy"] = torch.cat([o["entropy"] for o in outs])[: batch.size] if with_entropy else None
        return result

    def train_mini_batch(self, batch: TrainBatch) -> dict[str, float]:
        """One optimizer step over ``batch`` (a mini-batch), split across ranks."""
        valid = batch.response_mask > 0
        sft_valid = valid & batch.sft_select[:, None]
        totals = dict(
            total_tokens=int(valid.sum()),
            total_rows=int((valid.sum(1) > 0).sum()),
            total_sft=(int(sft_valid.sum()), int((sft_valid.sum(1) > 0).sum())),
        )
        outs = ray.get([w.train_mini_batch.remote(s, **totals) for w, s in zip(self.workers, self._shards(batch))])
        return _reduce(outs)

    def end_step(self) -> None:
        ray.get([w.end_step.remote() for w in self.workers])

    def full_state_dict(self) -> dict[str, torch.Tensor]:
        """The full HF-named weights, gathered from every rank (a collective: all ranks take part)."""
        return ray.get([w.full_state_dict.remote() for w in self.workers])[0]

    def export_weights(self):
        """Gather the full weights and write them to shared memory; returns rank 0's manifest."""
        return ray.get([w.export_weights.remote() for w in self.workers])[0]

    def save_checkpoint(self, path: str, tokenizer_path: str, *, with_optimizer: bool = True) -> None:
        ray.get([w.save_checkpoint.remote(path, tokenizer_path, with_optimizer=with_optimizer) for w in self.workers])

    def load_optimizer_state(self, path: str) -> None:
        """Restore the optimizer and LR schedule saved in checkpoint folder ``path`` (its ``optimizer.pt``)."""
        ray.get([w.load_optimizer_state.remote(path) for w in self.workers])

    def advance_schedule(self, steps: int) -> None:
        ray.get([w.advance_schedule.remote(steps) for w in self.workers])

    def shutdown(self) -> None:
        try:
            ray.get([w.shutdown.remote() for w in self.workers], timeout=60)
        finally:
            for w in self.workers:
                ray.kill(w)


def _reduce(outs: list[dict]) -> dict[str, float]:
    """Sum per-rank sums; token-weighted means for ``*_sum`` metrics, ``*_num / *_den`` ratios; max of ``*_max``."""
    sums: dict[str, float] = defaultdict(float)
    for out in outs:
        for k, v in out["sums"].items():
            sums[k] += v
    tokens = max(sums.pop("tokens", 0.0), 1.0)
    metrics: dict[str, float] = {}
    for key, value in sums.items():
        if key in ("grad_norm", "lr"):
            metrics[key] = outs[0]["sums"][key]  # identical on every rank
        elif key.endswith("_sum"):
            metrics[key[: -len("_sum")]] = value / tokens
        elif key.endswith("_num"):
            metrics[key[: -len("_num")]] = value / max(sums[key[: -len("_num")] + "_den"], 1.0)
        elif key.endswith("_den"):
            continue
        else:
            metrics[key] = value
    for out in outs:
        for k, v in out["maxes"].items():
            metrics[k] = max(metrics.get(k, -math.inf), v)
    metrics["tokens"] = tokens
    return metrics


def _node_cpus() -> int:
    import os

    return os.cpu_count() or 1
