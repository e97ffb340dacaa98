"""Weight transports without an engine: bucket layout, the shm file's verified header, the transport choice,
and a real gloo broadcast group between two processes."""

from __future__ import annotations

import os
import struct

import pytest
import torch

from rlkit.rollout.transport.base import WeightSyncError, choose_transports, plan_layout, transport_code
from rlkit.rollout.transport.shm import ShmManifest, ShmWriter, open_verified


def _weights() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "embed.weight": torch.randn(10, 8, generator=g),  # 320 bytes
        "norm.weight": torch.randn(8, generator=g),  # 32 bytes
        "proj.weight": torch.randn(3, 5, generator=g),  # 60 bytes
        "big.weight": torch.randn(40, 10, generator=g),  # 1600 bytes: larger than a bucket
    }


def _layout(bucket_bytes: int = 512):
    return plan_layout([(k, tuple(v.shape)) for k, v in _weights().items()], dtype="float32", bucket_bytes=bucket_bytes)


def _write(tmp_path, version: int = 3, weights=None) -> ShmManifest:
    weights = weights or _weights()
    layout = _layout()
    writer = ShmWriter(layout, tmp_path)
    writer.begin()
    for index, bucket in enumerate(layout.buckets):
        buf = torch.zeros(bucket.nbytes, dtype=torch.uint8)
        for e in bucket.entries:
            buf[e.offset : e.offset + e.nbytes].view(torch.float32).copy_(weights[e.name].reshape(-1))
        writer.write_bucket(index, buf)
    return writer.finish(version)


def test_layout_packs_tensors_into_aligned_buckets():
    layout = _layout()
    # embed (320) + norm at 320 (32) -> 352, proj at 384 (60) -> 444, aligned 448; big alone: 1600
    assert [[e.name for e in b.entries] for b in layout.buckets] == [
        ["embed.weight", "norm.weight", "proj.weight"], ["big.weight"]
    ]
    assert [(b.offset, b.nbytes) for b in layout.buckets] == [(0, 448), (448, 1600)]
    assert [e.offset for e in layout.entries] == [0, 320, 384, 448]
    assert layout.nbytes == 2048 and layout.largest_bucket == 1600
    bf16 = plan_layout([("a", (10, 8))], dtype="bfloat16", bucket_bytes=512)  # 160 bytes, bucket aligned to 64
    assert bf16.nbytes == 192 and bf16.fingerprint != plan_layout([("a", (10, 8))], dtype="float32", bucket_bytes=512).fingerprint


def test_shm_round_trip_gives_back_every_tensor(tmp_path):
    manifest = _write(tmp_path)
    got = dict(open_verified(manifest))
    assert list(got) == list(_weights())
    for name, tensor in _weights().items():
        assert torch.equal(got[name], tensor), name
    assert manifest.file_bytes == os.path.getsize(manifest.path) == 4096 + 2048


def test_missing_file_is_an_error_not_zeros(tmp_path):
    manifest = _write(tmp_path)
    os.unlink(manifest.path)
    with pytest.raises(WeightSyncError, match="does not exist on this node: a shared-memory file is only visible"):
        open_verified(manifest)
    assert not os.path.exists(manifest.path)  # torch.from_file would have created it (and vLLM loaded zeros)


def test_empty_file_is_rejected(tmp_path):
    manifest = _write(tmp_path)
    open(manifest.path, "wb").close()
    with pytest.raises(WeightSyncError, match="is empty or truncated: 0 bytes, expected 6144"):
        open_verified(manifest)


def test_truncated_file_is_rejected(tmp_path):
    manifest = _write(tmp_path)
    os.truncate(manifest.path, manifest.file_bytes - 100)
    with pytest.raises(WeightSyncError, match="truncated or the wrong size: 6044 bytes on disk, header says 6144"):
        open_verified(manifest)


def test_foreign_file_is_rejected(tmp_path):
    manifest = _write(tmp_path)
    with open(manifest.path, "r+b") as f:
        f.write(b"GGUF\0\0\0\0")
    with pytest.raises(WeightSyncError, match="is not an rlkit weight file"):
        open_verified(manifest)


def test_wrong_format_version_is_rejected(tmp_path):
    manifest = _write(tmp_path)
    with open(manifest.path, "r+b") as f:
        f.seek(8)
        f.write(struct.pack("<I", 99))
    with pytest.raises(WeightSyncError, match="has format version 99; this rlkit reads version 1"):
        open_verified(manifest)


def test_stale_weight_version_is_rejected(tmp_path):
    manifest = _write(tmp_path, version=3)
    stale = ShmManifest(manifest.path, 4, manifest.layout, manifest.file_bytes, manifest.host)
    with pytest.raises(WeightSyncError, match="holds weight version 3, expected 4"):
        open_verified(stale)


def test_corrupted_tensor_fails_its_checksum(tmp_path):
    manifest = _write(tmp_path)
    proj = next(e for e in manifest.layout.entries if e.name == "proj.weight")
    with open(manifest.path, "r+b") as f:
        f.seek(4096 + proj.offset)  # the payload starts after the 4 KiB header page; element 0 is sampled
        f.write(struct.pack("<f", 123.0))
    with pytest.raises(WeightSyncError, match="tensor proj.weight fails its checksum"):
        open_verified(manifest)


def test_zeroed_payload_fails_the_checksum(tmp_path):
    manifest = _write(tmp_path)
    with open(manifest.path, "r+b") as f:
        f.seek(4096)
        f.write(bytes(2048))
    with pytest.raises(WeightSyncError, match="tensor embed.weight fails its checksum"):
        open_verified(manifest)


def test_transport_choice_by_node():
    assert choose_transports("auto", learner_node="A", engine_nodes=["A", "B", "A"]) == ["shm", "broadcast", "shm"]
    assert choose_transports("broadcast", learner_node="A", engine_nodes=["A"]) == ["broadcast"]
    assert choose_transports("shm", learner_node="A", engine_nodes=["A", "A"]) == ["shm", "shm"]
    with pytest.raises(WeightSyncError, match=r"weight_transport=shm, but engine\(s\) \[1\] run on another Ray node"):
        choose_transports("shm", learner_node="A", engine_nodes=["A", "B"])
    assert transport_code(["shm"]) == 1 and transport_code(["broadcast"]) == 2 and transport_code(["shm", "broadcast"]) == 3


def _broadcast_rank(rank: int, port: int, out: str, version_seen: int) -> None:
    from rlkit.rollout.transport.broadcast import BroadcastChannel, receive, send_preamble

    layout = _layout()
    channel = BroadcastChannel(host="127.0.0.1", port=port, rank=rank, world_size=2, backend="gloo", timeout_s=60)
    if rank == 0:
        weights = _weights()
        send_preamble(channel, layout, 7)
        for bucket in layout.buckets:
            buf = torch.zeros(bucket.nbytes, dtype=torch.uint8)
            for e in bucket.entries:
                buf[e.offset : e.offset + e.nbytes].view(torch.float32).copy_(weights[e.name].reshape(-1))
            channel.broadcast(buf)
        return
    try:
        got = {name: t.clone() for name, t in receive(channel, layout, version_seen)}
        torch.save(got, out)
    except WeightSyncError as err:
        torch.save(str(err), out)
        for bucket in layout.buckets:  # let the sender finish
            channel.broadcast(torch.empty(bucket.nbytes, dtype=torch.uint8))


@pytest.mark.parametrize("expected_version", [7, 8])
def test_gloo_broadcast_delivers_every_bucket_and_checks_the_version(expected_version, tmp_path):
    import torch.multiprocessing as mp

    from rlkit.learner.worker import free_port

    out = str(tmp_path / "received.pt")
    mp.spawn(_broadcast_rank, args=(free_port(), out, expected_version), nprocs=2, join=True)
    got = torch.load(out, weights_only=True)
    if expected_version == 7:
        assert list(got) == list(_weights())
        for name, tensor in _weights().items():
            assert torch.equal(got[name], tensor), name
    else:
        assert "version 7" in got and "version 8" in got and got.startswith("weight broadcast preamble")


def test_requests_survive_vllms_msgpack_rpc_unchanged(tmp_path):
    """vLLM's multiprocess ``collective_rpc`` msgpack-encodes arguments: dataclasses arrive as dicts and
    tuples as lists, so requests travel as plain data and are rebuilt exactly (same layout fingerprint)."""
    import msgspec

    from rlkit.rollout.weight_sync import BroadcastRequest, from_wire, to_wire

    for request in (BroadcastRequest(_layout(), 5), _write(tmp_path)):
        back = from_wire(msgspec.msgpack.decode(msgspec.msgpack.encode(to_wire(request))))
        assert back == request and back.layout.fingerprint == request.layout.fingerprint


def test_stale_engines_are_named_with_their_versions():
    from rlkit.rollout.transport.base import refuse_stale_engines

    refuse_stale_engines(["engine 0", "engine 1"], [4, 4], 4, step=7)  # every engine current: nothing raised
    with pytest.raises(WeightSyncError, match=r"step 7: refusing to generate: the learners are at adapter version 4 "
                                              r"but engine 1 \(node b\) reported version 3$"):
        refuse_stale_engines(["engine 0 (node a)", "engine 1 (node b)"], [4, 3], 4, step=7, what="adapter")
    with pytest.raises(ValueError):  # an engine without a reported version is a bug, not a pass
        refuse_stale_engines(["engine 0", "engine 1"], [4], 4, step=7)
