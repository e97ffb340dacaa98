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
    """Learner side: one shared file per run, allocated and mapped once, rewritten per version.

    Reusing the mapping matters: a fresh tmpfs file costs a page fault per 4 KiB
    on every write, about as much as the copy itself.
    """

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = Path(directory or default_sync_dir())
        self.path = self.directory / f"rlkit-weights-{os.getpid()}-{uuid.uuid4().hex[:8]}.bin"
        self.version = 0
        self._entries: tuple[TensorEntry, ...] = ()
        self._views: dict[str, torch.Tensor] = {}

    def _layout(self, state_dict: dict[str, torch.Tensor]) -> tuple[tuple[TensorEntry, ...], int]:
        entries, offset = [], 0
        for name, tensor in state_dict.items():
            dtype = str(tensor.dtype).removeprefix("torch.")
            entries.append(TensorEntry(name, dtype, tuple(tensor.shape), offset))
            offset += tensor.numel() * tensor.element_size()
            offset = (offset + _ALIGN - 1) // _ALIGN * _ALIGN
        return tuple(entries), max(offset, 1)

    def write(self, state_dict: dict[str, torch.Tensor]) -> WeightManifest:
        entries, nbytes = self._layout(state_dict)
        if entries != self._entries:
            with open(self.path, "wb") as f:
                f.truncate(nbytes)
            self._entries, self._views = entries, _map_views(str(self.path), entries, nbytes)
        with torch.no_grad():
            for entry, tensor in zip(entries, state_dict.values()):
                self._views[entry.name].copy_(tensor.detach().reshape(entry.shape))
        self.version += 1
        return WeightManifest(str(self.path), entries, self.version)

    def close(self) -> None:
        self._views = {}
        self.path.unlink(missing_ok=True)


def _map_views(path: str, entries: list[TensorEntry] | tuple[TensorEntry, ...], nbytes: int) -> dict[str, torch.Tensor]:
    buf = torch.from_file(path, shared=True, size=nbytes, dtype=torch.uint8)
    views = {}
    for e in entries:
        size = _numel(e.shape) * _itemsize(e.dtype)
        views[e.name] = buf[e.offset : e.offset + size].view(getattr(torch, e.dtype)).view(e.shape)
    return views


_ENGINE_VIEWS: dict[tuple[str, tuple[TensorEntry, ...]], dict[str, torch.Tensor]] = {}


def read_manifest(manifest: WeightManifest) -> list[tuple[str, torch.Tensor]]:
    """Engine side: zero-copy views of every tensor in the shared file (mapped once per layout)."""
    key = (manifest.path, manifest.entries)
    if key not in _ENGINE_VIEWS:
        _ENGINE_VIEWS.clear()
        _ENGINE_VIEWS[key] = _map_views(manifest.path, manifest.entries, manifest.nbytes)
    return list(_ENGINE_VIEWS[key].items())


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
