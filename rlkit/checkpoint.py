"""Checkpoints: sharded with torch.distributed.checkpoint (DCP), written by every learner rank.

A checkpoint folder holds::

    dcp/                   the policy's weights and AdamW state, one file per rank (+ .metadata)
    scheduler.json         the LR schedule's position (rank 0)
    config.json, tokenizer files   what `rlkit export` needs to rebuild the HF model
    trainer_state.json     step and data order (the driver)
    model-*.safetensors    only in HF form (the final checkpoint, or `rlkit export`)

No rank gathers the model: DCP writes each rank's shards, and the HF form is
streamed bucket by bucket by rank 0 (one safetensors file per bucket). DCP
reshards on load, so a run resumes on any world size. Learners on several nodes
need ``trainer.checkpoint_dir`` on storage every node sees; :func:`check_shared_dir`
proves it before the first step.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import torch

DCP_DIR = "dcp"
SCHEDULER_FILE = "scheduler.json"
HF_INDEX = "model.safetensors.index.json"


def is_sharded(path: str | Path) -> bool:
    return (Path(path) / DCP_DIR / ".metadata").is_file()


def has_hf_weights(path: str | Path) -> bool:
    path = Path(path)
    return (path / "config.json").is_file() and ((path / HF_INDEX).is_file() or (path / "model.safetensors").is_file())


def _has_optimizer(path: Path) -> bool:
    from torch.distributed.checkpoint import FileSystemReader

    keys = FileSystemReader(str(path / DCP_DIR)).read_metadata().state_dict_metadata
    return any(k.startswith("optim.") for k in keys)


def save_sharded(
    path: str, *, model, policy, optimizer, scheduler, rank: int, with_optimizer: bool, tokenizer_path: str
) -> None:
    """Every rank writes its shards of ``model`` (the HF module) and, with ``with_optimizer``, of the
    AdamW state (keyed through ``policy``, the FSDP root). A collective."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

    state = {"model": get_model_state_dict(model)}
    if with_optimizer:
        state["optim"] = get_optimizer_state_dict(policy, optimizer)
    dcp.save(state, checkpoint_id=os.path.join(path, DCP_DIR))
    if rank == 0:
        from transformers import AutoTokenizer

        model.config.save_pretrained(path)  # config.json + tokenizer: what `rlkit export` rebuilds from
        AutoTokenizer.from_pretrained(tokenizer_path).save_pretrained(path)
        if with_optimizer:
            # The schedule's position; its function is rebuilt from the config, never pickled.
            schedule = {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"}
            Path(path, SCHEDULER_FILE).write_text(json.dumps(schedule))


def load_sharded(path: str, *, model, policy, optimizer, scheduler) -> bool:
    """Every rank reads its shards (any world size: DCP reshards). Returns whether the optimizer
    state and schedule were there (a checkpoint saved with ``trainer.save_optimizer=false`` has none)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import (
        get_model_state_dict,
        get_optimizer_state_dict,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    root = Path(path)
    if not is_sharded(root):
        raise FileNotFoundError(f"{root} is not a sharded rlkit checkpoint (no {DCP_DIR}/.metadata)")
    with_optimizer = _has_optimizer(root)
    state = {"model": get_model_state_dict(model)}
    if with_optimizer:
        state["optim"] = get_optimizer_state_dict(policy, optimizer)
    dcp.load(state, checkpoint_id=str(root / DCP_DIR))
    set_model_state_dict(model, state["model"])
    if with_optimizer:
        set_optimizer_state_dict(policy, optimizer, state["optim"])
        schedule = json.loads((root / SCHEDULER_FILE).read_text())
        scheduler.load_state_dict({**schedule, "lr_lambdas": [None] * len(optimizer.param_groups)})
    return with_optimizer


def save_hf_streamed(path: str, *, model, rank: int, tokenizer_path: str, bucket_bytes: int = 1 << 30) -> None:
    """The HF form (safetensors + index + config + tokenizer) of ``model``, streamed: every rank gathers
    one parameter at a time, rank 0 writes one safetensors file per bucket. A collective."""
    from rlkit.rollout.transport.stream import gathered_buckets, layout_for

    layout = layout_for(model, dtype="float32", bucket_bytes=bucket_bytes)
    write_hf_buckets(path, model=model, layout=layout, buckets=gathered_buckets(model, layout, sender=rank == 0),
                     rank=rank, tokenizer_path=tokenizer_path)  # fmt: skip


def write_hf_buckets(path: str, *, model, layout, buckets, rank: int, tokenizer_path: str) -> None:
    """Rank 0 writes each fp32 bucket of ``layout`` (``buckets`` yields ``(index, flat tensor)``) as one
    safetensors file, then the index, config and tokenizer; every rank consumes ``buckets`` (a collective)."""
    from safetensors.torch import save_file
    from transformers import AutoTokenizer

    total = len(layout.buckets)
    weight_map: dict[str, str] = {}
    for index, bucket in buckets:
        if rank != 0:
            continue
        name = f"model-{index + 1:05d}-of-{total:05d}.safetensors"
        tensors = {}
        for entry in layout.buckets[index].entries:
            view = bucket[entry.offset : entry.offset + entry.nbytes].view(torch.float32).view(entry.shape)
            tensors[entry.name] = view.clone()  # safetensors refuses tensors sharing one buffer
            weight_map[entry.name] = name
        save_file(tensors, os.path.join(path, name), metadata={"format": "pt"})
        del tensors
    if rank == 0:
        index = {"metadata": {"total_size": layout.nbytes}, "weight_map": weight_map}
        Path(path, HF_INDEX).write_text(json.dumps(index, indent=2))
        model.config.save_pretrained(path)
        AutoTokenizer.from_pretrained(tokenizer_path).save_pretrained(path)


def export_hf(checkpoint: str | Path, out: str | Path) -> Path:
    """`rlkit export CKPT --out DIR`: the HF folder of a sharded checkpoint, in one process (no learners).
    Holds the whole model once (fp32); for a model that does not fit, run it on a machine that fits it."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.default_planner import DefaultLoadPlanner
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    checkpoint, out = Path(checkpoint), Path(out)
    if not is_sharded(checkpoint):
        raise FileNotFoundError(f"{checkpoint}: not a sharded rlkit checkpoint (no {DCP_DIR}/.metadata)")
    config = AutoConfig.from_pretrained(checkpoint)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    state = {"model": model.state_dict()}
    dcp.load(state, checkpoint_id=str(checkpoint / DCP_DIR), planner=DefaultLoadPlanner(allow_partial_load=True))
    model.load_state_dict(state["model"])
    model.tie_weights()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(checkpoint).save_pretrained(out)
    return out


def shared_marker(directory: str | Path) -> tuple[str, str]:
    """Driver side of :func:`check_shared_dir`: write a marker file; returns its path and content."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    marker = directory / f".rlkit-shared-{token[:12]}"
    marker.write_text(token)
    return str(marker), token


def check_shared_dir(marker: str, token: str) -> str | None:
    """Learner side: None if this process sees the driver's marker file, else what it sees instead."""
    try:
        seen = Path(marker).read_text()
    except OSError as err:
        return f"cannot read {marker}: {err.strerror or err}"
    return None if seen == token else f"{marker} holds other content"
