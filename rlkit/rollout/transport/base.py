"""What every weight transport shares: the bucketed layout of one weight version, and the choice of transport.

A sync streams the policy's parameters, in the engines' dtype, as a sequence of
buckets of at most ``rollout.weight_bucket_mb``; each bucket is a flat byte
buffer holding whole tensors at fixed offsets (:class:`WeightLayout`). The
layout is fixed for a run (names, shapes, dtype), so it is computed once and both
ends agree on it by its fingerprint.

Which transport an engine gets is decided by comparing the Ray node id of the
engine with that of learner rank 0 (DESIGN.md "Beyond one host"), never assumed.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Literal

import torch

Transport = Literal["shm", "broadcast"]
TransportMode = Literal["auto", "shm", "broadcast"]
# ``sync/transport`` metric: a bitmask of the transports a sync used (1 shm, 2 broadcast, 3 both).
TRANSPORT_CODES: dict[str, int] = {"shm": 1, "broadcast": 2}

ALIGN = 64  # bytes; every tensor starts on a cache-line boundary


class WeightSyncError(RuntimeError):
    """A weight sync that cannot go ahead (a file another node cannot see, a wrong version...)."""


def refuse_stale_engines(infos: list[str], loaded: list[int], version: int, *, step: int, what: str = "weight") -> None:
    """Raise :class:`WeightSyncError` naming every engine whose reported ``loaded`` version is not ``version``."""
    stale = [(info, v) for info, v in zip(infos, loaded, strict=True) if v != version]
    if stale:
        raise WeightSyncError(
            f"step {step}: refusing to generate: the learners are at {what} version {version} "
            "but " + ", ".join(f"{info} reported version {v}" for info, v in stale)
        )


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: str  # torch dtype name without "torch."
    shape: tuple[int, ...]
    offset: int  # bytes from the start of its bucket (or, in a shm file, of the payload)

    @property
    def nbytes(self) -> int:
        return numel(self.shape) * itemsize(self.dtype)


@dataclass(frozen=True)
class Bucket:
    entries: tuple[TensorEntry, ...]  # offsets relative to the bucket
    offset: int  # the bucket's first byte within the whole version
    nbytes: int


@dataclass(frozen=True)
class WeightLayout:
    """Every tensor of one weight version, in order, grouped into buckets."""

    buckets: tuple[Bucket, ...]
    dtype: str

    @property
    def nbytes(self) -> int:
        last = self.buckets[-1]
        return last.offset + last.nbytes

    @property
    def entries(self) -> list[TensorEntry]:
        """Every tensor with its offset within the whole version."""
        return [
            TensorEntry(e.name, e.dtype, e.shape, b.offset + e.offset) for b in self.buckets for e in b.entries
        ]

    @property
    def fingerprint(self) -> int:
        """crc32 of names, shapes, dtypes and offsets: both ends of a sync must hold the same layout."""
        text = ";".join(f"{e.name}:{e.dtype}:{e.shape}:{e.offset}" for e in self.entries)
        return zlib.crc32(text.encode())

    @property
    def largest_bucket(self) -> int:
        return max(b.nbytes for b in self.buckets)


def numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def itemsize(dtype: str) -> int:
    return torch.empty((), dtype=getattr(torch, dtype)).element_size()


def _aligned(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def plan_layout(shapes: list[tuple[str, tuple[int, ...]]], *, dtype: str, bucket_bytes: int) -> WeightLayout:
    """Group ``(name, shape)`` tensors, in order, into buckets of at most ``bucket_bytes``
    (a tensor larger than that gets a bucket of its own)."""
    if not shapes:
        raise ValueError("plan_layout: no tensors")
    if bucket_bytes < 1:
        raise ValueError(f"plan_layout: bucket_bytes must be >= 1, got {bucket_bytes}")
    buckets: list[Bucket] = []
    current: list[TensorEntry] = []
    size, start = 0, 0
    for name, shape in shapes:
        nbytes = numel(tuple(shape)) * itemsize(dtype)
        if current and _aligned(size) + nbytes > bucket_bytes:
            buckets.append(Bucket(tuple(current), start, _aligned(size)))
            start, current, size = start + _aligned(size), [], 0
        current.append(TensorEntry(name, dtype, tuple(int(s) for s in shape), _aligned(size)))
        size = _aligned(size) + nbytes
    buckets.append(Bucket(tuple(current), start, _aligned(size)))
    return WeightLayout(tuple(buckets), dtype)


def bucket_views(buffer: torch.Tensor, bucket: Bucket) -> list[tuple[str, torch.Tensor]]:
    """``(name, tensor)`` views into a bucket's flat uint8 ``buffer`` (no copy)."""
    out = []
    for e in bucket.entries:
        out.append((e.name, buffer[e.offset : e.offset + e.nbytes].view(getattr(torch, e.dtype)).view(e.shape)))
    return out


def sample_checksum(tensor: torch.Tensor, *, samples: int = 64) -> int:
    """crc32 of ``samples`` evenly spaced elements' bytes (and the element count): cheap to compute at
    both ends, and it tells a truncated, foreign, stale or zero-filled tensor from the one written."""
    flat = tensor.reshape(-1)
    n = flat.numel()
    if n == 0:
        return zlib.crc32(b"empty")
    k = min(samples, n)  # evenly spaced in integers: float32 linspace rounds n - 1 up to n past 2**24
    index = torch.arange(k, dtype=torch.int64) * (n - 1) // max(k - 1, 1)
    picked = flat[index].contiguous()
    return zlib.crc32(picked.view(torch.uint8).numpy().tobytes(), n & 0xFFFFFFFF)


def choose_transports(mode: TransportMode, *, learner_node: str, engine_nodes: list[str]) -> list[Transport]:
    """The transport of each engine: ``shm`` where it shares learner rank 0's Ray node, else ``broadcast``
    (``auto``); a forced mode applies to all, and forcing ``shm`` onto another node is an error."""
    if mode == "broadcast":
        return ["broadcast"] * len(engine_nodes)
    if mode == "shm":
        away = [i for i, node in enumerate(engine_nodes) if node != learner_node]
        if away:
            raise WeightSyncError(
                f"rollout.weight_transport=shm, but engine(s) {away} run on another Ray node than learner rank 0 "
                f"(node {learner_node[:16]}; engine nodes {[engine_nodes[i][:16] for i in away]}): a shared-memory "
                "file is only visible on its own node; use rollout.weight_transport=auto or broadcast"
            )
        return ["shm"] * len(engine_nodes)
    if mode != "auto":
        raise ValueError(f"rollout.weight_transport: unknown mode {mode!r}; expected auto, shm or broadcast")
    return ["shm" if node == learner_node else "broadcast" for node in engine_nodes]


def transport_code(transports: list[str]) -> int:
    code = 0
    for t in set(transports):
        code |= TRANSPORT_CODES[t]
    return code
