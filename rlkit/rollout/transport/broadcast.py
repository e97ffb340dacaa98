"""Cross-node transport: a collective broadcast from learner rank 0 to the engines, bucket by bucket.

The group is made of learner rank 0 (group rank 0) and every engine worker that
syncs this way (ranks 1..n), created with vLLM's stateless process-group helpers,
as in vLLM's RLHF examples, so it never touches the learners' default (FSDP)
process group: gloo on CPU (``stateless_init_torch_distributed_process_group``),
NCCL on GPU (``StatelessProcessGroup`` + ``PyNcclCommunicator``). Each engine
joins once per run (and again after a restart).

Each version starts with a 4-integer preamble (magic, weight version, bytes,
layout fingerprint) that the engine checks before vLLM sees any tensor; then each
bucket is broadcast into a fresh buffer that vLLM's layerwise ``reload_weights``
consumes, so neither end ever holds more than a bucket beyond its own weights.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import torch

from rlkit.rollout.transport.base import WeightLayout, WeightSyncError, bucket_views

PREAMBLE_MAGIC = 0x524C4B4954575431  # "RLKITWT1"


class BroadcastChannel:
    """One end of the weight-broadcast group; ``rank`` 0 is the sender (learner rank 0)."""

    def __init__(self, *, host: str, port: int, rank: int, world_size: int, backend: str, timeout_s: float) -> None:
        self.rank, self.world_size, self.backend = rank, world_size, backend
        if backend == "nccl":
            from vllm.distributed.device_communicators.pynccl import PyNcclCommunicator
            from vllm.distributed.utils import StatelessProcessGroup

            group = StatelessProcessGroup.create(host=host, port=port, rank=rank, world_size=world_size)
            self.device = torch.device("cuda", torch.cuda.current_device())
            self._comm = PyNcclCommunicator(group, device=self.device)
        elif backend == "gloo":
            from vllm.distributed.utils import stateless_init_torch_distributed_process_group

            self.device = torch.device("cpu")
            self._pg = stateless_init_torch_distributed_process_group(
                host, port, rank, world_size, "gloo", timeout=timedelta(seconds=timeout_s)
            )
        else:
            raise ValueError(f"weight broadcast backend must be gloo or nccl, got {backend!r}")

    def broadcast(self, tensor: torch.Tensor) -> None:
        """From rank 0 into ``tensor`` on every other rank (in place)."""
        if self.backend == "nccl":
            self._comm.broadcast(tensor, src=0, stream=torch.cuda.current_stream())
            torch.cuda.current_stream().synchronize()
        else:
            self._pg.broadcast(tensor, 0).wait()

    def close(self) -> None:
        if self.backend == "gloo":
            from vllm.distributed.utils import stateless_destroy_torch_distributed_process_group

            try:
                stateless_destroy_torch_distributed_process_group(self._pg)
            except Exception:  # noqa: BLE001 - a peer already gone; nothing left to release
                pass


def send_preamble(channel: BroadcastChannel, layout: WeightLayout, version: int) -> None:
    channel.broadcast(torch.tensor([PREAMBLE_MAGIC, version, layout.nbytes, layout.fingerprint],
                                   dtype=torch.int64, device=channel.device))  # fmt: skip


def receive(channel: BroadcastChannel, layout: WeightLayout, version: int) -> Iterator[tuple[str, torch.Tensor]]:
    """Engine side: ``(name, tensor)`` for every tensor of weight ``version``, one bucket in flight.

    The preamble is checked first: a sender with another layout or version is an error
    before any tensor is produced.
    """
    preamble = torch.zeros(4, dtype=torch.int64, device=channel.device)
    channel.broadcast(preamble)
    magic, got_version, nbytes, fingerprint = (int(v) for v in preamble.cpu())
    expected = (PREAMBLE_MAGIC, version, layout.nbytes, layout.fingerprint)
    if (magic, got_version, nbytes, fingerprint) != expected:
        raise WeightSyncError(
            f"weight broadcast preamble (magic {magic:#x}, version {got_version}, {nbytes} bytes, layout "
            f"{fingerprint}) does not match what this engine expects (magic {PREAMBLE_MAGIC:#x}, version {version}, "
            f"{layout.nbytes} bytes, layout {layout.fingerprint})"
        )
    for bucket in layout.buckets:
        buffer = torch.empty(bucket.nbytes, dtype=torch.uint8, device=channel.device)
        channel.broadcast(buffer)
        yield from bucket_views(buffer, bucket)
