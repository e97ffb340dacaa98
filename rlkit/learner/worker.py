"""One FSDP2 learner rank, run as a Ray actor (see :class:`rlkit.learner.group.LearnerGroup`).

Every rank holds a shard of the policy (``fully_shard`` per decoder layer plus
the root), computes log-probs of its share of the batch, and accumulates
gradients over micro-batches. Each micro-batch's loss is scaled by
:func:`rlkit.algorithms.aggregation_weight` so the gradient summed over
micro-batches and ranks equals the loss aggregated over the whole mini-batch
(algorithms.md section 5), not an average of per-piece means.
"""

from __future__ import annotations

import logging
import math
import os
import socket
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from rlkit.algorithm_config import AlgorithmConfig
from rlkit.algorithms import (
    aggregate,
    aggregation_weight,
    compute_policy_loss,
    kl_penalty,
    mismatch_kl,
    rollout_correction,
    sft_loss,
)
from rlkit.batch import TrainBatch
from rlkit.config import LearnerConfig, ModelConfig
from rlkit.learner.packing import empty_row, packing_unsupported, plan_micro_batches, sequence_lengths
from rlkit.learner.policy import CausalLMPolicy
from rlkit.learner.throughput import device_peak_flops, matmul_params, training_flops

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
OPTIMIZER_FILE = "optimizer.pt"


@dataclass(frozen=True)
class LearnerSpec:
    """Everything a rank needs to build itself; the same object goes to every rank."""

    model: ModelConfig  # model.path already resolved to a local folder
    learner: LearnerConfig
    algorithm: AlgorithmConfig
    temperature: float
    total_steps: int
    norm_len: int  # seq-mean-token-sum-norm divisor: the generation budget
    seed: int = 0
    reference_path: str | None = None  # the KL reference's weights (default: model.path)
    top_p: float = 1.0  # the engines' sampling truncation: log-probs are taken under the same distribution
    top_k: int = -1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


class LearnerWorker:
    def __init__(
        self, *, rank: int, world_size: int, spec: LearnerSpec, device: str = "cpu", backend: str = "gloo"
    ) -> None:
        """``device`` and ``backend`` come from :func:`rlkit.cluster.devices.choose` (the placement)."""
        self.rank, self.world_size, self.spec = rank, world_size, spec
        cfg = spec.learner
        self.device, self.backend = torch.device(device), backend
        threads = cfg.threads or max(1, (os.cpu_count() or 1) // world_size)
        torch.set_num_threads(threads)
        torch.manual_seed(spec.seed + rank)
        self.policy: CausalLMPolicy | None = None

    def where(self) -> dict:
        """This rank's node ip, Ray node id and pid (errors name them)."""
        from rlkit.cluster.calls import where

        return where()

    def address(self) -> tuple[str, int]:
        """Rank 0 names the rendezvous address of the process group."""
        import ray

        return ray.util.get_node_ip_address(), free_port()

    def setup(self, master_addr: str, master_port: int) -> dict[str, float]:
        backend = self.backend
        if self.device.type == "cuda":
            torch.cuda.set_device(0)  # Ray exposes one GPU per learner actor
        dist.init_process_group(
            backend, init_method=f"tcp://{master_addr}:{master_port}",
            rank=self.rank, world_size=self.world_size, timeout=timedelta(minutes=30),
        )
        self.policy = self._build_policy(trainable=True)
        self.ref = self._build_policy(trainable=False) if self.spec.algorithm.kl.enabled else None
        cfg = self.spec.learner
        self.optimizer = torch.optim.AdamW(  # LoRA: the adapters only (the base weights are frozen)
            [p for p in self.policy.parameters() if p.requires_grad], lr=cfg.lr, betas=cfg.betas, eps=cfg.adam_eps, weight_decay=cfg.weight_decay
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        params = sum(p.numel() for p in self.policy.parameters())
        trainable = sum(p.numel() for p in self.policy.parameters() if p.requires_grad)
        return {"params_local": float(params), "trainable_params_local": float(trainable)}

    def _build_policy(self, *, trainable: bool) -> CausalLMPolicy:
        """The policy (fp32 master weights) or the frozen KL reference (kept in the compute dtype,
        CPU-offloaded with ``learner.reference_cpu_offload`` on GPU), sharded with FSDP2: rank 0 loads
        the weights once, the other ranks start on the meta device (rlkit/learner/sharded_init.py)."""
        from rlkit.learner.sharded_init import build_sharded_policy

        model_cfg = self.spec.model
        path = model_cfg.path if trainable else (self.spec.reference_path or model_cfg.path)
        compute = _DTYPES[model_cfg.dtype]
        policy = build_sharded_policy(
            path, rank=self.rank, world_size=self.world_size, device=self.device,
            param_dtype=torch.float32 if trainable else compute, compute_dtype=compute,
            gradient_checkpointing=trainable and model_cfg.gradient_checkpointing,
            attn_implementation=model_cfg.attn_implementation,
            cpu_offload=not trainable and self.spec.learner.reference_cpu_offload,
            lora=model_cfg.lora if trainable else None,
        )  # fmt: skip
        if not trainable:
            policy.requires_grad_(False)
            policy.eval()
        return policy

    def _lr_factor(self, step: int) -> float:
        cfg = self.spec.learner
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.lr_schedule == "constant":
            return 1.0
        span = max(1, self.spec.total_steps - cfg.warmup_steps)
        progress = min(1.0, (step - cfg.warmup_steps) / span)
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    # ---------------------------------------------------------------- forward passes

    def _packing(self) -> bool:
        """Whether micro-batches run packed: ``learner.packing`` and a model that can (else padding, with
        a warning naming why)."""
        if getattr(self, "_packed", None) is None:
            why = packing_unsupported(self.policy.hf.config) if self.spec.learner.packing else None
            if why is not None:
                logging.getLogger("rlkit").warning("learner.packing: padding instead, since %s", why)
            self._packed = self.spec.learner.packing and why is None
        return self._packed

    def _micro_batches(self, batch: TrainBatch) -> list[tuple[list[int], TrainBatch]]:
        """(row indices in ``batch``, micro-batch) pairs: ``micro_batch_size`` rows each, or bin-packed under
        ``max_tokens_per_micro_batch`` (rlkit/learner/packing.py). FSDP2 gathers the weights in every
        forward, so every rank runs as many micro-batches as the busiest one: the others add empty ones
        (a padding row: no loss, no gradient)."""
        cfg = self.spec.learner
        plan = plan_micro_batches(sequence_lengths(batch), rows=cfg.micro_batch_size,
                                  max_tokens=cfg.max_tokens_per_micro_batch, packed=self._packing())  # fmt: skip
        pieces = [(rows, batch.select(rows).trimmed()) for rows in plan]
        count = len(pieces)
        if self.world_size > 1 and dist.is_initialized():
            most = torch.tensor([count], device=self.device)
            dist.all_reduce(most, op=dist.ReduceOp.MAX)
            count = int(most)
        return pieces + [([], empty_row(batch).trimmed())] * (count - len(pieces))

    def _to_device(self, batch: TrainBatch) -> TrainBatch:
        if self.device.type == "cpu":
            return batch
        moved = {k: (v.to(self.device) if isinstance(v, torch.Tensor) else v) for k, v in vars(batch).items()}
        return TrainBatch(**moved)

    def _forward(self, model: CausalLMPolicy, mb: TrainBatch, *, with_entropy: bool):
        return model(
            self._to_device(mb), temperature=self.spec.temperature, top_p=self.spec.top_p, top_k=self.spec.top_k,
            chunk_size=self.spec.learner.logprob_chunk_size, with_entropy=with_entropy, packed=self._packing(),
        )

    @torch.no_grad()
    def compute_logprobs(self, batch: TrainBatch, *, with_entropy: bool, reference: bool = False) -> dict:
        """Log-probs (and entropies) of ``batch``'s response tokens under the current or reference policy."""
        model = self.ref if reference else self.policy
        out = {"logprobs": torch.zeros(batch.size, batch.response_len)}
        out["entropy"] = torch.zeros(batch.size, batch.response_len) if with_entropy else None
        for rows, mb in self._micro_batches(batch):
            lp, ent = self._forward(model, mb, with_entropy=with_entropy)
            if rows:  # micro-batches keep response columns from 0: trimmed() only drops trailing ones
                out["logprobs"][rows, : lp.shape[1]] = lp.float().cpu()
                if ent is not None:
                    out["entropy"][rows, : ent.shape[1]] = ent.float().cpu()
        return out

    # ---------------------------------------------------------------- the update

    def train_mini_batch(self, batch: TrainBatch, *, total_tokens: int, total_rows: int, total_sft: tuple[int, int]) -> dict:
        """One optimizer step on this rank's share of a mini-batch.

        ``old_logprobs`` may be None: the update is then on-policy (one epoch, one
        mini-batch) and the old log-probs are the current ones, detached, which
        saves a forward pass. Returns sums that the group reduces over ranks.
        """
        algo, policy = self.spec.algorithm, self.policy
        policy.train()
        need_entropy = algo.erc is not None
        params = dict(algo.params)
        if algo.loss_agg == "seq-mean-token-sum-norm":
            params.setdefault("norm_len", self.spec.norm_len)
        norm_len = params.pop("norm_len", None)
        sums: dict[str, float] = defaultdict(float)
        maxes: dict[str, float] = {}
        if self.device.type == "cuda":  # model FLOPs of the real tokens, for train/mfu (rlkit/learner/throughput.py)
            sums["flops"] = training_flops(self.policy.hf.config, params=matmul_params(self.policy.hf),
                                           lengths=[n for n in sequence_lengths(batch) if n > 1])  # fmt: skip
            sums["peak_flops"] = device_peak_flops(torch.cuda.get_device_name(), self.spec.model.dtype) or math.nan
        for _, mb in self._micro_batches(batch):
            # Entropy is always computed: ERC needs it and entropy/mean is logged every step.
            logprobs, entropy = self._forward(policy, mb, with_entropy=True)
            on_policy = mb.old_logprobs is None
            old_lp = logprobs.detach() if on_policy else mb.old_logprobs.to(logprobs)
            old_ent = None
            if need_entropy:
                old_ent = entropy.detach() if on_policy else mb.old_entropy.to(entropy)
            mask = mb.response_mask.to(logprobs.device)
            # Engine-sampled tokens (replayed answers have no engine log-probs): the rollout correction's
            # importance weights (constants) scale the per-token advantages; weight 1 elsewhere.
            sampled = mask if mb.replayed is None else mask * (~mb.replayed.to(mask.device))[:, None]
            behaviour = mb.rollout_logprobs.to(logprobs)
            rc = algo.rollout_correction
            advantages = mb.advantages.to(logprobs)
            if rc.kind != "none":
                correction = rollout_correction(behaviour, old_lp, sampled, kind=rc.kind, level=rc.level, clip=rc.clip)
                advantages = (advantages[:, None] if advantages.dim() == 1 else advantages) * correction.weights
                sums["rollout/is_weight_mean_num"] += float((correction.weights * sampled).sum())
                sums["rollout/is_weight_mean_den"] += float(sampled.sum())
                sums["rollout/is_over_clip_frac_num"] += float(correction.over.sum())
                sums["rollout/is_over_clip_frac_den"] += float(sampled.sum())
            sums["rollout/mismatch_kl_num"] += float(mismatch_kl(behaviour, old_lp, sampled).sum())
            sums["rollout/mismatch_kl_den"] += float(sampled.sum())
            loss, metrics = compute_policy_loss(
                algo.loss, logprobs, old_lp, advantages, mask, loss_agg=algo.loss_agg,
                entropy=entropy.detach() if need_entropy else None, old_entropy=old_ent,
                erc=algo.erc, norm_len=norm_len, **params,
            )
            weight = aggregation_weight(algo.loss_agg, mask, total_tokens=total_tokens, total_rows=total_rows)
            total = loss * weight
            if algo.sft_coef > 0:
                select = mb.sft_select.to(logprobs.device)
                sft_w = aggregation_weight(algo.loss_agg, mask * select[:, None], total_tokens=total_sft[0], total_rows=total_sft[1])
                sft = sft_loss(logprobs, mask, select=select, loss_agg=algo.loss_agg, norm_len=norm_len) * sft_w
                total = total + algo.sft_coef * sft
                sums["sft_loss"] += sft.item()
            if algo.kl.enabled and algo.kl.target == "loss":
                kl = aggregate(kl_penalty(logprobs, mb.ref_logprobs.to(logprobs), algo.kl.kind), mask,
                               loss_agg=algo.loss_agg, norm_len=norm_len) * weight
                total = total + algo.kl.coef * kl
                sums["kl"] += kl.item()
            # FSDP2 averages gradients over ranks; the weights above already sum to 1 over ranks.
            (total * self.world_size).backward()

            tokens = float(mask.sum())
            sums["loss"] += total.item()
            sums["policy_loss"] += loss.item() * weight
            sums["tokens"] += tokens
            sums["entropy_sum"] += float((entropy.detach() * mask).sum())
            if on_policy:  # the engine's log-probs against the learner's (replayed answers have none)
                diff = (behaviour - logprobs.detach()).abs()
                sums["logprob_diff_num"] += float((diff * sampled).sum())
                sums["logprob_diff_den"] += float(sampled.sum())
            for key, value in metrics.items():
                if key.endswith("_max"):
                    maxes[key] = max(maxes.get(key, -math.inf), value)
                else:
                    sums[f"{key}_sum"] += value * tokens
        grad_norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), self.spec.learner.max_grad_norm)
        if hasattr(grad_norm, "full_tensor"):
            grad_norm = grad_norm.full_tensor()  # the all-reduced norm: every rank decides alike
        finite = math.isfinite(float(grad_norm))
        if finite:  # a NaN/inf gradient never reaches the weights: the step is skipped on every rank
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        sums["grad_norm"] = float(grad_norm)
        sums["skipped"] = 0.0 if finite else 1.0
        sums["lr"] = self.scheduler.get_last_lr()[0]
        return {"sums": dict(sums), "maxes": maxes}

    def end_step(self) -> None:
        """Advance the learning-rate schedule once per training step."""
        self.scheduler.step()

    # ---------------------------------------------------------------- weights out

    def full_state_dict(self) -> dict[str, torch.Tensor] | None:
        """The HF-named full state dict on rank 0 (None elsewhere); every rank must call it."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        sd = get_model_state_dict(self.policy.hf, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        if self.rank != 0:
            return None
        if getattr(self.policy.hf.config, "tie_word_embeddings", False):
            sd.pop("lm_head.weight", None)
        return sd

    def weight_layout(self, dtype: str, bucket_bytes: int):
        """The bucketed layout the engines' weights stream in (rlkit/rollout/transport/base.py)."""
        from rlkit.rollout.transport.stream import layout_for

        if self.spec.model.lora is not None:  # lora.sync: merged (base names, adapters folded in)
            from rlkit.learner.lora import merged_layout

            self._layout = merged_layout(self.policy.hf, dtype=dtype, bucket_bytes=bucket_bytes)
            return self._layout
        self._layout = layout_for(self.policy.hf, dtype=dtype, bucket_bytes=bucket_bytes)
        return self._layout

    def open_weight_transport(self, *, shm: bool, broadcast: dict | None) -> None:
        """Rank 0: the shared-memory file (same-node engines) and/or a seat in the weight-broadcast
        group (``broadcast``: host, port, world_size, backend, timeout_s; blocks until the engines join)."""
        from rlkit.rollout.transport.broadcast import BroadcastChannel
        from rlkit.rollout.transport.shm import ShmWriter

        if self.rank != 0:
            return
        if shm and getattr(self, "_shm", None) is None:
            self._shm = ShmWriter(self._layout)
        if broadcast is not None:
            if getattr(self, "_channel", None) is not None:
                self._channel.close()
            self._channel = BroadcastChannel(rank=0, **broadcast)

    def send_weights(self, version: int, *, shm: bool, broadcast: bool) -> dict | None:
        """Stream weight ``version`` bucket by bucket from the FSDP2 shards (every rank takes part);
        rank 0 writes each bucket to the shm file and/or broadcasts it. Rank 0 returns the shm manifest
        (or None), the bytes sent and its peak RSS above the start of the sync."""
        import time

        from rlkit.rollout.transport.broadcast import send_preamble
        from rlkit.rollout.transport.stream import gathered_buckets, reset_peak_rss, rss_bytes

        sender = self.rank == 0
        started, base = time.perf_counter(), rss_bytes()
        measured = sender and reset_peak_rss()
        channel = getattr(self, "_channel", None) if sender and broadcast else None
        if sender and shm:
            self._shm.begin()
        if channel is not None:
            send_preamble(channel, self._layout, version)
        device = channel.device if channel is not None else torch.device("cpu")
        buckets = gathered_buckets
        if self.spec.model.lora is not None:
            from rlkit.learner.lora import merged_buckets as buckets
        for index, bucket in buckets(self.policy.hf, self._layout, sender=sender, device=device):
            if not sender:
                continue
            if channel is not None:
                channel.broadcast(bucket)
            if shm:
                self._shm.write_bucket(index, bucket if bucket.device.type == "cpu" else bucket.cpu())
        if not sender:
            return None
        return {
            "manifest": self._shm.finish(version) if shm else None,
            "bytes": self._layout.nbytes,
            "seconds": time.perf_counter() - started,
            "peak_extra_bytes": max(rss_bytes("VmHWM") - base, 0) if measured else -1,
        }

    def save_checkpoint(self, path: str, tokenizer_path: str, *, with_optimizer: bool = True, hf: bool = False) -> None:
        """Sharded checkpoint (rlkit/checkpoint.py): every rank writes its shards of the weights and, with
        ``with_optimizer``, of the AdamW state (DCP), so a resume continues the same optimization on any
        world size. With ``hf``, also the HF form (safetensors streamed by rank 0, one bucket at a time)
        that transformers and vLLM load. A collective: every rank calls it."""
        from rlkit.checkpoint import save_hf_streamed, save_sharded

        save_sharded(path, model=self.policy.hf, policy=self.policy, optimizer=self.optimizer, scheduler=self.scheduler,
                     rank=self.rank, with_optimizer=with_optimizer, tokenizer_path=tokenizer_path)  # fmt: skip
        if self.spec.model.lora is not None:
            from rlkit.learner.lora_checkpoint import save_lora_checkpoint

            save_lora_checkpoint(path, self, hf=hf, tokenizer_path=tokenizer_path)
        elif hf:
            save_hf_streamed(path, model=self.policy.hf, rank=self.rank, tokenizer_path=tokenizer_path)

    def adapter_tensors(self) -> dict[str, torch.Tensor] | None:
        """LoRA: the adapter's full tensors in PEFT names on rank 0 (fresh copies); None elsewhere. A collective."""
        from rlkit.learner.lora import gather_adapter

        return gather_adapter(self.policy.hf, sender=self.rank == 0)

    def optimizer_state_names(self) -> list[str]:
        """Names of the parameters that hold optimizer state (LoRA: the adapters only)."""
        names = {id(p): n for n, p in self.policy.named_parameters()}
        return sorted(names[id(p)] for p in self.optimizer.state if self.optimizer.state[p])

    def load_checkpoint(self, path: str) -> bool:
        """Weights, AdamW state and LR schedule from a sharded checkpoint (saved on any world size);
        returns whether it held the optimizer state."""
        from rlkit.checkpoint import load_sharded

        return load_sharded(path, model=self.policy.hf, policy=self.policy, optimizer=self.optimizer, scheduler=self.scheduler)

    def check_shared_dir(self, marker: str, token: str) -> str | None:
        """None when this rank sees the driver's marker file in the checkpoint dir (shared storage)."""
        from rlkit.checkpoint import check_shared_dir

        return check_shared_dir(marker, token)

    def advance_schedule(self, steps: int) -> None:
        """Move the LR schedule ``steps`` steps on (a resume without optimizer state)."""
        for _ in range(steps):
            self.scheduler.step()

    def shutdown(self) -> None:
        if getattr(self, "_shm", None) is not None:
            self._shm.close()
        if getattr(self, "_channel", None) is not None:
            self._channel.close()
        if dist.is_initialized():
            dist.destroy_process_group()
