"""Learner side of a sync: the policy's weights as buckets, gathered straight from the FSDP2 shards.

Every rank walks the layout parameter by parameter and calls ``full_tensor()`` (an
all-gather: each rank holds one full parameter at a time, never the state dict);
rank 0 casts it to the engines' dtype into the current bucket and hands the
bucket to the transport when it is full. The bucket buffer is allocated once.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from rlkit.rollout.transport.base import WeightLayout, plan_layout


def sync_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The parameters an engine loads, HF-named (a tied output projection appears once, as the embedding)."""
    return list(model.named_parameters())


def layout_for(model: nn.Module, *, dtype: str, bucket_bytes: int) -> WeightLayout:
    """The run's layout from the (global) parameter shapes; no parameter is gathered."""
    return plan_layout([(name, tuple(p.shape)) for name, p in sync_parameters(model)], dtype=dtype, bucket_bytes=bucket_bytes)


@torch.no_grad()
def gathered_buckets(
    model: nn.Module, layout: WeightLayout, *, sender: bool, device: torch.device | None = None
) -> Iterator[tuple[int, torch.Tensor | None]]:
    """``(bucket index, flat uint8 bucket)`` on the sender, ``(index, None)`` elsewhere; every rank must
    iterate it to the end (each parameter's ``full_tensor()`` is a collective)."""
    params = dict(sync_parameters(model))
    buffer = torch.empty(layout.largest_bucket, dtype=torch.uint8, device=device) if sender else None
    for index, bucket in enumerate(layout.buckets):
        for entry in bucket.entries:
            param = params[entry.name].detach()
            full = param.full_tensor() if hasattr(param, "full_tensor") else param
            if sender:
                target = buffer[entry.offset : entry.offset + entry.nbytes].view(getattr(torch, entry.dtype))
                target.view(entry.shape).copy_(full)
            del full
        yield index, (buffer[: bucket.nbytes] if sender else None)


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS (VmHWM) so :func:`peak_rss_bytes` measures from now (Linux)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def rss_bytes(field: str = "VmRSS") -> int:
    """``VmRSS`` (now) or ``VmHWM`` (peak since the last reset) of this process, in bytes (0 if unknown)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
