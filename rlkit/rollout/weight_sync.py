"""Engine side of a weight sync: rlkit's methods inside vLLM's worker (``worker_extension_cls``).

Weights arrive through one of the transports in :mod:`rlkit.rollout.transport`
(a verified shared-memory file on the learner's node, a collective broadcast from
anywhere) as an iterator of HF-named tensors that vLLM's ``reload_weights``
consumes layerwise. vLLM's ``reload_weights`` is used rather than
``model.load_weights``: on CPU the engine repacks linear weights into its own
kernels' layout, and only the layerwise reload repacks them again.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlkit.rollout.transport.base import Bucket, TensorEntry, WeightLayout
from rlkit.rollout.transport.shm import ShmManifest


@dataclass(frozen=True)
class BroadcastRequest:
    """Receive weight ``version`` (laid out as ``layout``) from the weight-broadcast group."""

    layout: WeightLayout
    version: int


def to_wire(request: ShmManifest | BroadcastRequest) -> dict:
    """Plain lists, dicts, strings and ints: what vLLM's msgpack ``collective_rpc`` carries to workers in
    another process unchanged (a dataclass would arrive as a dict, tuples as lists)."""
    layout = {
        "dtype": request.layout.dtype,
        "buckets": [[b.offset, b.nbytes, [[e.name, e.dtype, list(e.shape), e.offset] for e in b.entries]]
                    for b in request.layout.buckets],
    }  # fmt: skip
    wire = {"version": request.version, "layout": layout}
    if isinstance(request, ShmManifest):
        wire.update(kind="shm", path=request.path, file_bytes=request.file_bytes, host=request.host)
    else:
        wire["kind"] = "broadcast"
    return wire


def from_wire(wire: dict) -> ShmManifest | BroadcastRequest:
    buckets = tuple(
        Bucket(tuple(TensorEntry(name, dtype, tuple(shape), offset) for name, dtype, shape, offset in entries), start, nbytes)
        for start, nbytes, entries in wire["layout"]["buckets"]
    )  # fmt: skip
    layout = WeightLayout(buckets, wire["layout"]["dtype"])
    if wire["kind"] == "shm":
        return ShmManifest(wire["path"], wire["version"], layout, wire["file_bytes"], wire["host"])
    return BroadcastRequest(layout, wire["version"])


class WeightSyncExtension:
    """Mixed into vLLM's worker (``worker_extension_cls``); ``self`` is the worker.

    Method names are prefixed so they never clash with the worker's own
    (``update_weights``, ``reload_weights``... already exist there).
    """

    def rlkit_join_weight_group(
        self, host: str, port: int, rank_offset: int, world_size: int, backend: str, timeout_s: float
    ) -> int:
        """Join the weight-broadcast group as rank ``rank_offset`` + this worker's rank (once per run)."""
        from rlkit.rollout.transport.broadcast import BroadcastChannel

        old = getattr(self, "_rlkit_channel", None)
        if old is not None:
            old.close()
        rank = rank_offset + int(getattr(self, "rank", 0))
        self._rlkit_channel = BroadcastChannel(
            host=host, port=port, rank=rank, world_size=world_size, backend=backend, timeout_s=timeout_s
        )
        return rank

    def rlkit_load_adapter(self, tensors: dict, config: dict) -> int:
        """Replace the LoRA adapter under rlkit's fixed id with ``tensors`` (rlkit/rollout/lora_sync.py)."""
        from rlkit.rollout.lora_sync import load_adapter_in_worker

        return load_adapter_in_worker(self, tensors, config)

    def rlkit_load_weights(self, wire: dict) -> int:
        """Load one weight version (:func:`to_wire` form); returns the version loaded."""
        from rlkit.rollout.transport.broadcast import receive
        from rlkit.rollout.transport.shm import open_verified

        request = from_wire(wire)
        if isinstance(request, ShmManifest):
            weights = iter(open_verified(request))  # verified before vLLM sees any tensor
        else:
            channel = getattr(self, "_rlkit_channel", None)
            if channel is None:
                raise RuntimeError("weight broadcast requested before this engine joined the weight group")
            weights = receive(channel, request.layout, request.version)
        self.reload_weights(weights_iterator=weights, is_checkpoint_format=True)
        for _ in weights:  # a sender blocks until every bucket is taken
            pass
        model = self.model_runner.model
        lm_head = getattr(model, "lm_head", None)
        tied = getattr(getattr(model, "config", None), "tie_word_embeddings", False)
        if tied and lm_head is not None and hasattr(lm_head, "quant_method"):
            # The CPU lm_head keeps its own packed copy of the tied embedding;
            # reload_weights does not refresh it (stale logits otherwise).
            lm_head.quant_method.process_weights_after_loading(lm_head)
        return request.version
