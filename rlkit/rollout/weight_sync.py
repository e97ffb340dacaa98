"""Weight sync from the learners into vLLM engines through one shared-memory file.

The learner (rank 0) writes the gathered full state dict into a flat file in
``/dev/shm`` once; every engine on the node maps the same file and hands vLLM
zero-copy views. vLLM's ``reload_weights`` is used rather than
``model.load_weights``: on CPU the engine repacks linear weights into its own
kernels' layout, and only the layerwise reload repacks them again.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import torch

_ALIGN = 64  # bytes; every tensor starts on a cache-line boundary


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: str
    shape: tuple[int, ...]
    offset: int  # bytes from the start of the file


@dataclass(frozen=True)
class WeightManifest:
    """Where each tensor of one weight version lies in a shared file."""

    path: str
    entries: tuple[TensorEntry, ...]
    version: int

    @property
    def nbytes(self) -> int:
        last = self.entries[-1]
        return last.offset + _numel(last.shape) * _itemsize(last.dtype)


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _itemsize(dtype: str) -> int:
    return torch.empty((), dtype=getattr(torch, dtype)).element_size()


def default_sync_dir() -> Path:
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(os.environ.get("TMPDIR", "/tmp"))


class SharedWeightWriter:
    """Learner side: keeps one shared file per run and rewrites it for each version."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = Path(directory or default_sync_dir())
        self.path = self.directory / f"rlkit-weights-{os.getpid()}-{uuid.uuid4().hex[:8]}.bin"
        self.version = 0

    def write(self, state_dict: dict[str, torch.Tensor]) -> WeightManifest:
        entries, offset = [], 0
        for name, tensor in state_dict.items():
            dtype = str(tensor.dtype).removeprefix("torch.")
            entries.append(TensorEntry(name, dtype, tuple(tensor.shape), offset))
            offset += tensor.numel() * tensor.element_size()
            offset = (offset + _ALIGN - 1) // _ALIGN * _ALIGN
        with open(self.path, "wb") as f:
            f.truncate(max(offset, 1))
        views = _map_views(str(self.path), entries, max(offset, 1))
        with torch.no_grad():
            for entry, tensor in zip(entries, state_dict.values()):
                views[entry.name].copy_(tensor.detach().to("cpu", non_blocking=False).reshape(entry.shape))
        self.version += 1
        return WeightManifest(str(self.path), tuple(entries), self.version)

    def close(self) -> None:
        self.path.unlink(missing_ok=True)


def _map_views(path: str, entries: list[TensorEntry] | tuple[TensorEntry, ...], nbytes: int) -> dict[str, torch.Tensor]:
    buf = torch.from_file(path, shared=True, size=nbytes, dtype=torch.uint8)
    views = {}
    for e in entries:
        size = _numel(e.shape) * _itemsize(e.dtype)
        views[e.name] = buf[e.offset : e.offset + size].view(getattr(torch, e.dtype)).view(e.shape)
    return views


def read_manifest(manifest: WeightManifest) -> list[tuple[str, torch.Tensor]]:
    """Engine side: zero-copy views of every tensor in the shared file."""
    views = _map_views(manifest.path, manifest.entries, manifest.nbytes)
    return list(views.items())


class WeightSyncExtension:
    """Mixed into vLLM's worker (``worker_extension_cls``); ``self`` is the worker.

    Method names are prefixed so they never clash with the worker's own
    (``update_weights``, ``reload_weights``... already exist there).
    """

    def rlkit_load_weights(self, manifest: WeightManifest) -> int:
        self.reload_weights(weights_iterator=read_manifest(manifest), is_checkpoint_format=True)
        model = self.model_runner.model
        lm_head = getattr(model, "lm_head", None)
        tied = getattr(getattr(model, "config", None), "tie_word_embeddings", False)
        if tied and lm_head is not None and hasattr(lm_head, "quant_method"):
            # The CPU lm_head keeps its own packed copy of the tied embedding;
            # reload_weights does not refresh it (stale logits otherwise).
            lm_head.quant_method.process_weights_after_loading(lm_head)
        return manifest.version

    def rlkit_weight_checksum(self, names: list[str]) -> dict[str, float]:
        """Sum of each named parameter as the engine holds it (for tests)."""
        params = dict(self.model_runner.model.named_parameters())
        return {n: float(params[n].detach().double().sum()) for n in names if n in params}
