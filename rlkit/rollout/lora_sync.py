"""LoRA adapter sync (``model.lora.sync: adapter``): only the adapter tensors travel to the engines.

Engines start with LoRA enabled (``max_lora_rank`` rounded up to a rank vLLM allows, one adapter
slot). After each step rank 0 gathers the adapter (fresh fp32 copies of the FSDP2 shards' full
tensors), the driver hands them to every engine, and each engine worker builds a vLLM ``LoRAModel``
from the tensors in memory and registers it under ONE fixed adapter id, replacing the previous
version (removed first: vLLM caches adapters by id, so re-adding an id it knows would silently keep
the old weights). Every generate passes the matching ``LoRARequest``; without it vLLM samples the
base model. The base weights are never re-sent: ``sync/bytes`` is the adapter's size.
"""

from __future__ import annotations

import logging
import time

from rlkit.cluster.calls import gather
from rlkit.rollout.transport.base import WeightSyncError, refuse_stale_engines

logger = logging.getLogger("rlkit")

ADAPTER_ID = 1
ADAPTER_NAME = "rlkit-policy"
IN_MEMORY_PATH = "rlkit://in-memory"  # never read: the adapter is registered before any request names it


def vllm_max_lora_rank(rank: int) -> int:
    """The smallest ``max_lora_rank`` vLLM accepts that is >= ``rank`` (vllm/config/lora.py ``MaxLoRARanks``)."""
    from typing import get_args

    from vllm.config.lora import MaxLoRARanks

    allowed = sorted(get_args(MaxLoRARanks))
    for value in allowed:
        if value >= rank:
            return value
    raise ValueError(f"model.lora.rank={rank} exceeds the largest max_lora_rank vLLM serves ({allowed[-1]})")


def lora_request():
    """The one request every generate passes (the adapter registered by :func:`load_adapter_in_worker`)."""
    from vllm.lora.request import LoRARequest

    return LoRARequest(ADAPTER_NAME, ADAPTER_ID, lora_path=IN_MEMORY_PATH)


def load_adapter_in_worker(worker, tensors: dict, config: dict) -> int:
    """Inside a vLLM worker: replace the adapter under :data:`ADAPTER_ID` with ``tensors`` (PEFT names,
    ``config`` = adapter_config.json's content). Returns the number of LoRA modules loaded."""
    from vllm.lora.lora_model import LoRAModel
    from vllm.lora.peft_helper import PEFTHelper

    manager = worker.model_runner.lora_manager  # vLLM's WorkerLoRAManager
    adapters = manager._adapter_manager
    helper = PEFTHelper.from_dict({**config, "vllm_max_position_embeddings": manager.max_position_embeddings})
    helper.validate_legal(manager.lora_config)
    mapper = getattr(adapters.model, "hf_to_vllm_mapper", None)
    lora = LoRAModel.from_lora_tensors(
        lora_model_id=ADAPTER_ID, tensors=tensors, peft_helper=helper, device="cpu",
        dtype=manager.lora_config.lora_dtype, model_vocab_size=manager.vocab_size,
        weights_mapper=mapper.get_rename_mapper() if mapper is not None else None,
    )  # fmt: skip
    if not lora.loras:
        raise WeightSyncError(f"the engine found no LoRA module it serves among {sorted(tensors)[:4]}...")
    adapters.remove_adapter(ADAPTER_ID)  # deactivates its slot: the next forward copies the new weights in
    adapters.add_adapter(lora)
    return len(lora.loras)


class LoraAdapterSync:
    """Driver side: same interface as :class:`rlkit.rollout.transport.sync.WeightSync`
    (``sync``, ``resync``, ``check_versions``, ``last``, ``version``)."""

    def __init__(self, learners, engines, *, adapter_config: dict, timeout_s: float, current_step=lambda: None) -> None:
        self.learners, self.engines, self.config = learners, engines, adapter_config
        self.timeout_s, self.current_step = timeout_s, current_step
        self.version = 0
        self.loaded: list[int] = [-1] * len(engines.actors)
        self.last: dict[str, float] = {}
        self._push(0)  # the initial adapter (B = 0): every generate, from the first, names the adapter

    def sync(self) -> dict[str, float]:
        self.version += 1
        return self._push(self.version)

    def resync(self) -> dict[str, float]:
        return self._push(self.version)

    def _push(self, version: int) -> dict[str, float]:
        started = time.perf_counter()
        tensors = self.learners.wait(self.learners.start("adapter_tensors"), "export_adapter")[0]
        gathered = time.perf_counter() - started
        refs = [a.load_adapter.remote(tensors, self.config, version) for a in self.engines.actors]
        results = gather(refs, actors=self.engines.infos, what="load_adapter", timeout_s=self.timeout_s,
                         step=self.current_step())  # fmt: skip
        self.loaded = [r["version"] for r in results]
        self.check_versions()
        self.last = {
            "sync/bytes": float(sum(t.numel() * t.element_size() for t in tensors.values())),
            "sync/send_s": gathered,
            "sync/load_s": max(r["seconds"] for r in results),
            "sync/adapter_modules": float(results[0]["modules"]),
        }
        return self.last

    def check_versions(self) -> None:
        if len(self.loaded) != len(self.engines.actors):
            self.loaded = [-1] * len(self.engines.actors)
        refuse_stale_engines(self.engines.infos, self.loaded, self.version, step=self.current_step(), what="adapter")

    def close(self) -> None:
        """Nothing to release: the adapters live in the engines' processes."""
