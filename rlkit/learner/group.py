"""Driver-side handle on the FSDP2 learner ranks (Ray actors)."""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from typing import Callable

import ray
import torch

from rlkit.batch import TrainBatch
from rlkit.cluster.calls import ActorInfo, gather
from rlkit.cluster.placement import Placement
from rlkit.learner.packing import balanced_shards
from rlkit.learner.worker import LearnerSpec, LearnerWorker

logger = logging.getLogger("rlkit")


class LearnerGroup:
    """``world_size`` learner actors forming one process group.

    Methods split a batch evenly over the ranks (padding with empty rows, which
    carry no loss and no gradient), call every rank, and reduce the results.
    """

    def __init__(
        self, spec: LearnerSpec, *, env: dict[str, str] | None = None, placement: Placement | None = None,
        call_timeout_s: float = 3600.0, startup_timeout_s: float = 900.0,
        current_step: Callable[[], int | None] = lambda: None,
    ) -> None:  # fmt: skip
        """Ranks go to ``placement``'s learner bundles (rank r in bundle r); without one the group
        places itself from ``spec.learner.resources`` and the cluster's resources."""
        cfg = spec.learner
        self.world_size = cfg.world_size
        self.call_timeout_s = call_timeout_s
        self.current_step = current_step  # the training step errors name
        self._own_placement = placement is None
        self.placement = placement or _learner_placement(spec, timeout_s=startup_timeout_s)
        choice = self.placement.plan.learner
        threads = cfg.threads or max(1, _node_cpus() // self.world_size)
        env_vars = {"OMP_NUM_THREADS": str(threads), **(env or {})}
        self.workers = [
            ray.remote(LearnerWorker).options(**self.placement.learner_options(r), runtime_env={"env_vars": env_vars})
            .remote(rank=r, world_size=self.world_size, spec=spec, device=choice.device, backend=choice.backend)
            for r in range(self.world_size)
        ]  # fmt: skip
        self.infos = [ActorInfo(f"learner rank {r}") for r in range(self.world_size)]
        try:
            wheres = self._gather([w.where.remote() for w in self.workers], "learner startup", timeout_s=startup_timeout_s)
            self.infos = [ActorInfo(f"learner rank {r}", **where) for r, where in enumerate(wheres)]
            addr, port = self._gather([self.workers[0].address.remote()], "learner rendezvous", timeout_s=startup_timeout_s)[0]
            self._gather([w.setup.remote(addr, port) for w in self.workers], "learner setup", timeout_s=startup_timeout_s)
        except BaseException:
            for w in self.workers:
                ray.kill(w)
            if self._own_placement:
                self.placement.remove()
            raise

    def _gather(self, refs: list, what: str, *, timeout_s: float | None = None) -> list:
        """``ray.get`` of one call per rank, bounded by the call timeout; errors name rank, node and step."""
        return gather(refs, actors=self.infos[: len(refs)], what=what, timeout_s=timeout_s or self.call_timeout_s, step=self.current_step())

    def _shards(self, batch: TrainBatch) -> tuple[list[TrainBatch], list[list[int]], float]:
        """Each rank's rows, balanced by tokens (rlkit/learner/packing.py): shards, their row indices in
        ``batch`` (indices past its end are empty padding rows) and the token imbalance (max/mean)."""
        return balanced_shards(batch, self.world_size)

    def compute_logprobs(self, batch: TrainBatch, *, with_entropy: bool, reference: bool = False) -> dict:
        shards, rows, _ = self._shards(batch)
        outs = self._gather([
            w.compute_logprobs.remote(shard, with_entropy=with_entropy, reference=reference)
            for w, shard in zip(self.workers, shards)
        ], "compute_logprobs")
        keys = ("logprobs", "entropy") if with_entropy else ("logprobs",)
        result = {"logprobs": None, "entropy": None}
        for key in keys:  # back into batch order; padding rows (index >= batch.size) dropped
            full = torch.zeros(max(batch.size, sum(map(len, rows))), batch.response_len)
            for index, out in zip(rows, outs):
                full[index] = out[key]
            result[key] = full[: batch.size]
        return result

    def train_mini_batch(self, batch: TrainBatch) -> dict[str, float]:
        """One optimizer step over ``batch`` (a mini-batch), split across ranks by tokens. Adds
        ``train/tokens_per_s`` (real tokens over the call's wall time), ``train/rank_token_imbalance``
        and, on GPUs with a known peak, ``train/mfu``."""
        totals = batch.loss_totals()
        shards, _, imbalance = self._shards(batch)
        started = time.perf_counter()
        outs = self._gather([w.train_mini_batch.remote(s, **totals) for w, s in zip(self.workers, shards)], "train_mini_batch")
        seconds = time.perf_counter() - started
        metrics = _reduce(outs)
        metrics["train/tokens_per_s"] = float(batch.attention_mask.sum()) / seconds
        metrics["train/rank_token_imbalance"] = imbalance
        flops, peak = metrics.pop("flops", None), metrics.pop("peak_flops", None)
        if flops is not None and peak is not None and math.isfinite(peak):
            metrics["train/mfu"] = flops / (seconds * peak)
        return metrics

    def end_step(self) -> None:
        self._gather([w.end_step.remote() for w in self.workers], "end_step")

    def full_state_dict(self) -> dict[str, torch.Tensor]:
        """The full HF-named weights, gathered from every rank (a collective: all ranks take part)."""
        return self._gather([w.full_state_dict.remote() for w in self.workers], "full_state_dict")[0]

    def weight_layout(self, dtype: str, bucket_bytes: int):
        """The bucketed layout weight syncs stream in (every rank keeps it; rank 0's is returned)."""
        return self._gather([w.weight_layout.remote(dtype, bucket_bytes) for w in self.workers], "weight_layout")[0]

    def start(self, method: str, *args, **kwargs) -> list:
        """``method`` on every rank without waiting (for a call whose other side, e.g. the engines'
        end of a weight broadcast, must run at the same time); :meth:`wait` for the results."""
        return [getattr(w, method).remote(*args, **kwargs) for w in self.workers]

    def wait(self, refs: list, what: str) -> list:
        return self._gather(refs, what)

    def save_checkpoint(self, path: str, tokenizer_path: str, *, with_optimizer: bool = True, hf: bool = False) -> None:
        """Every rank writes its shards into ``path`` (rlkit/checkpoint.py); ``hf``: also the HF form."""
        self._gather([w.save_checkpoint.remote(path, tokenizer_path, with_optimizer=with_optimizer, hf=hf)
                      for w in self.workers], "save_checkpoint")  # fmt: skip

    def load_checkpoint(self, path: str) -> bool:
        """Weights, optimizer state and LR schedule from sharded checkpoint ``path`` (any world size);
        returns whether it held the optimizer state."""
        return self._gather([w.load_checkpoint.remote(path) for w in self.workers], "load_checkpoint")[0]

    def check_shared_dir(self, marker: str, token: str) -> None:
        """Raise unless every rank sees the driver's marker file: the checkpoint dir is shared storage."""
        seen = self._gather([w.check_shared_dir.remote(marker, token) for w in self.workers], "check_shared_dir")
        blind = [f"{info}: {why}" for info, why in zip(self.infos, seen) if why is not None]
        if blind:
            raise RuntimeError(
                "trainer.checkpoint_dir must be storage every learner node shares with the driver (each rank "
                "writes its own shards there), but " + "; ".join(blind)
            )

    def advance_schedule(self, steps: int) -> None:
        self._gather([w.advance_schedule.remote(steps) for w in self.workers], "advance_schedule")

    def shutdown(self) -> None:
        try:
            ray.get([w.shutdown.remote() for w in self.workers], timeout=60)
        except Exception as err:  # noqa: BLE001 - a dead or stuck rank: the actors are killed below
            logger.warning("learner shutdown: %s", str(err).splitlines()[0] if str(err) else type(err).__name__)
        finally:
            for w in self.workers:
                ray.kill(w)
            if self._own_placement:
                self.placement.remove()


def _reduce(outs: list[dict]) -> dict[str, float]:
    """Sum per-rank sums; token-weighted means for ``*_sum`` metrics, ``*_num / *_den`` ratios; max of ``*_max``."""
    sums: dict[str, float] = defaultdict(float)
    for out in outs:
        for k, v in out["sums"].items():
            sums[k] += v
    tokens = max(sums.pop("tokens", 0.0), 1.0)
    metrics: dict[str, float] = {}
    for key, value in sums.items():
        if key in ("grad_norm", "lr", "skipped"):
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


def _learner_placement(spec: LearnerSpec, *, timeout_s: float) -> Placement:
    """Learner bundles alone, for a group built outside a :class:`~rlkit.trainer.Trainer`."""
    from rlkit.cluster.devices import choose
    from rlkit.cluster.placement import PlacementPlan, check_fits, create_placement
    from rlkit.cluster.ray_init import cluster_resources

    cluster = cluster_resources()
    cfg = spec.learner
    learner = choose(resources=cfg.resources, cluster=cluster, backend=cfg.backend, key="learner.resources")
    plan = PlacementPlan(learner=learner, engine=learner, world_size=cfg.world_size, num_engines=0, engine_size=1)
    check_fits(plan, cluster)
    return create_placement(plan, timeout_s=timeout_s, name="rlkit-learners")


def _node_cpus() -> int:
    import os

    return os.cpu_count() or 1
