"""Same-node transport: one shared-memory file (``/dev/shm``) that learner rank 0 writes and engines map.

File layout (little-endian)::

    0      magic b"RLKITWT\\0", format version (u32), header length (u64),
           payload offset (u64), payload bytes (u64)
    64     header: JSON {"weight_version", "fingerprint", "entries": [[name, crc], ...]}
    payload_offset   the buckets of :class:`~rlkit.rollout.transport.base.WeightLayout`, back to back

The writer fills the payload bucket by bucket with ``pwrite`` (rank 0 never maps
or holds the whole file) and writes the header last. The engine checks the file
before vLLM sees a byte of it (:func:`open_verified`): that it exists on this node,
its size, magic, format version, weight version, layout fingerprint, and a
checksum of a sample of every tensor. An engine on another node, which sees no
file or an empty one, gets an error instead of zeros.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import uuid
from dataclasses import dataclass
from pathlib import Path

import torch

from rlkit.rollout.transport.base import WeightLayout, WeightSyncError, bucket_views, sample_checksum

MAGIC = b"RLKITWT\0"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<8sIQQQ")
_HEADER_AT = 64
_PAGE = 4096


@dataclass(frozen=True)
class ShmManifest:
    """What the driver hands an engine: where the file is and what it must hold."""

    path: str
    version: int
    layout: WeightLayout
    file_bytes: int
    host: str  # the node that wrote it, for error messages


def default_sync_dir() -> Path:
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(os.environ.get("TMPDIR", "/tmp"))


def _header_space(layout: WeightLayout) -> int:
    """Bytes reserved before the payload: room for the JSON header at its longest."""
    longest = _header_json(layout, version=2**62, crcs=[2**32 - 1] * len(layout.entries))
    return (_HEADER_AT + len(longest) + _PAGE - 1) // _PAGE * _PAGE


def _header_json(layout: WeightLayout, *, version: int, crcs: list[int]) -> bytes:
    entries = [[e.name, crc] for e, crc in zip(layout.entries, crcs)]
    return json.dumps({"weight_version": version, "fingerprint": layout.fingerprint, "entries": entries}).encode()


class ShmWriter:
    """Learner rank 0: one file per run, sized once, rewritten bucket by bucket for every version.

    Reusing the file matters: a fresh tmpfs file costs a page fault per 4 KiB on every
    write, about as much as the copy itself.
    """

    def __init__(self, layout: WeightLayout, directory: Path | None = None) -> None:
        self.layout = layout
        self.payload_offset = _header_space(layout)
        self.file_bytes = self.payload_offset + layout.nbytes
        directory = Path(directory or default_sync_dir())
        self.path = directory / f"rlkit-weights-{os.getpid()}-{uuid.uuid4().hex[:8]}.bin"
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        os.ftruncate(self._fd, self.file_bytes)
        self._crcs: list[int] = []

    def begin(self) -> None:
        self._crcs = []

    def write_bucket(self, index: int, buffer: torch.Tensor) -> None:
        """Bucket ``index`` of the layout as a flat uint8 tensor."""
        bucket = self.layout.buckets[index]
        data = buffer[: bucket.nbytes].contiguous()
        written = os.pwrite(self._fd, memoryview(data.numpy()), self.payload_offset + bucket.offset)
        if written != bucket.nbytes:
            raise WeightSyncError(f"{self.path}: wrote {written} of {bucket.nbytes} bytes of bucket {index} (disk full?)")
        self._crcs.extend(sample_checksum(t) for _, t in bucket_views(data, bucket))

    def finish(self, version: int) -> ShmManifest:
        """Write the header (last, so the file is only ever described once complete)."""
        if len(self._crcs) != len(self.layout.entries):
            raise WeightSyncError(f"{self.path}: {len(self._crcs)} of {len(self.layout.entries)} tensors written")
        header = _header_json(self.layout, version=version, crcs=self._crcs)
        prefix = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(header), self.payload_offset, self.layout.nbytes)
        os.pwrite(self._fd, prefix, 0)
        os.pwrite(self._fd, header, _HEADER_AT)
        return ShmManifest(str(self.path), version, self.layout, self.file_bytes, socket.gethostname())

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self.path.unlink(missing_ok=True)


_MAPPED: dict[tuple, torch.Tensor] = {}


def open_verified(manifest: ShmManifest) -> list[tuple[str, torch.Tensor]]:
    """Engine side: zero-copy ``(name, tensor)`` views of every tensor in the file, after checking
    everything about it. Raises :class:`WeightSyncError` saying what is wrong; never maps a file that
    is missing (``torch.from_file`` would create an empty one, and vLLM would load zeros)."""
    path, here = manifest.path, socket.gethostname()
    where = f"weight file {path} (written on {manifest.host}, read on {here})"
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        raise WeightSyncError(
            f"{where} does not exist on this node: a shared-memory file is only visible on the node that "
            "wrote it; an engine on another node needs rollout.weight_transport=broadcast (or auto)"
        ) from None
    if stat.st_size < _HEADER_AT:
        raise WeightSyncError(f"{where} is empty or truncated: {stat.st_size} bytes, expected {manifest.file_bytes}")
    with open(path, "rb") as f:
        magic, fmt, header_len, payload_offset, payload_bytes = _PREFIX.unpack(f.read(_PREFIX.size))
        if magic != MAGIC:
            raise WeightSyncError(f"{where} is not an rlkit weight file (magic {magic!r}, expected {MAGIC!r})")
        if fmt != FORMAT_VERSION:
            raise WeightSyncError(f"{where} has format version {fmt}; this rlkit reads version {FORMAT_VERSION}")
        if stat.st_size != manifest.file_bytes or payload_offset + payload_bytes != stat.st_size:
            raise WeightSyncError(
                f"{where} is truncated or the wrong size: {stat.st_size} bytes on disk, header says "
                f"{payload_offset + payload_bytes}, expected {manifest.file_bytes}"
            )
        f.seek(_HEADER_AT)
        try:
            header = json.loads(f.read(header_len))
        except ValueError as err:
            raise WeightSyncError(f"{where} has an unreadable header: {err}") from None
    if header["weight_version"] != manifest.version:
        raise WeightSyncError(f"{where} holds weight version {header['weight_version']}, expected {manifest.version}")
    if header["fingerprint"] != manifest.layout.fingerprint:
        raise WeightSyncError(f"{where} was written with another tensor layout (fingerprint {header['fingerprint']}, "
                              f"expected {manifest.layout.fingerprint})")  # fmt: skip
    key = (path, stat.st_ino, stat.st_size)
    if key not in _MAPPED:
        _MAPPED.clear()
        _MAPPED[key] = torch.from_file(path, shared=True, size=stat.st_size, dtype=torch.uint8)
    payload = _MAPPED[key][payload_offset:]
    views = []
    for bucket in manifest.layout.buckets:
        views.extend(bucket_views(payload[bucket.offset : bucket.offset + bucket.nbytes], bucket))
    for (name, tensor), (written_name, crc) in zip(views, header["entries"]):
        if name != written_name or sample_checksum(tensor) != crc:
            raise WeightSyncError(f"{where}: tensor {name} fails its checksum (corrupted or overwritten)")
    return views
