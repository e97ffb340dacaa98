"""Resuming from a sharded checkpoint continues the same optimization: weights, AdamW moments, LR schedule.

Two FSDP2 (gloo) ranks train on fixed batches. Run A: steps 1, 2, checkpoint (every rank writes its
shards with torch.distributed.checkpoint), steps 3, 4. Run B: new ranks (world size 1, then 3) start
from the base model, load A's checkpoint (resharded), steps 3, 4. B's weights equal A's; from a
checkpoint saved without the optimizer state they do not.
"""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.slow


def _spec(model_path: str, reference: str, world_size: int):
    from rlkit.algorithm_config import AlgorithmConfig
    from rlkit.config import LearnerConfig, ModelConfig
    from rlkit.learner.worker import LearnerSpec

    learner = LearnerConfig(
        world_size=world_size, backend="gloo", lr=1e-3, micro_batch_size=4, threads=1,
        warmup_steps=2, lr_schedule="cosine", min_lr_ratio=0.1,
    )  # fmt: skip
    return LearnerSpec(
        model=ModelConfig(path=model_path), learner=learner, algorithm=AlgorithmConfig(), temperature=1.0,
        total_steps=6, norm_len=8, reference_path=reference,
    )  # fmt: skip


def _batch(step: int):
    from rlkit.batch import build_batch

    g = torch.Generator().manual_seed(step)
    prompts = [torch.randint(3, 200, (3,), generator=g).tolist() for _ in range(4)]
    responses = [torch.randint(3, 200, (n,), generator=g).tolist() for n in (4, 2, 5, 3)]
    return build_batch(
        prompt_ids=prompts, response_ids=responses, rollout_logprobs=[[0.0] * len(r) for r in responses],
        group_ids=[0, 0, 1, 1], rewards=[1.0, 0.0, 0.0, 1.0], advantages=torch.tensor([1.0, -1.0, -1.0, 1.0]),
        pad_token_id=0,
    )  # fmt: skip


def _train(group, steps):
    lrs = []
    for step in steps:
        lrs.append(group.train_mini_batch(_batch(step))["lr"])
        group.end_step()
    return lrs


@pytest.fixture(scope="module")
def ray_local():
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    if started:
        ray.shutdown()


def test_resume_with_optimizer_state_continues_exactly(ray_local, tiny_llama, tmp_path):
    from rlkit.checkpoint import DCP_DIR, SCHEDULER_FILE, has_hf_weights
    from rlkit.learner.group import LearnerGroup

    base = str(tiny_llama)
    a = LearnerGroup(_spec(base, base, world_size=2))
    try:
        lrs_a = _train(a, [1, 2])
        a.save_checkpoint(str(tmp_path / "ckpt"), base)
        a.save_checkpoint(str(tmp_path / "weights_only"), base, with_optimizer=False)
        lrs_a += _train(a, [3, 4])
        final_a = a.full_state_dict()
    finally:
        a.shutdown()
    shards = sorted(p.name for p in (tmp_path / "ckpt" / DCP_DIR).iterdir())
    assert shards == [".metadata", "__0_0.distcp", "__1_0.distcp"]  # one file per rank, no gathered copy
    assert (tmp_path / "ckpt" / SCHEDULER_FILE).is_file() and not has_hf_weights(tmp_path / "ckpt")

    for world_size in (1, 3):
        b = LearnerGroup(_spec(base, base, world_size=world_size))
        try:
            assert b.load_checkpoint(str(tmp_path / "ckpt")) is True
            lrs_b = _train(b, [3, 4])
            final_b = b.full_state_dict()
        finally:
            b.shutdown()
        assert lrs_b == lrs_a[2:]  # the schedule went on (warmup was over), not restarted
        for name, tensor in final_a.items():
            torch.testing.assert_close(final_b[name], tensor, rtol=0, atol=1e-6, msg=f"world size {world_size}: {name}")
    assert lrs_a[0] == pytest.approx(0.5e-3) and lrs_a[1] == pytest.approx(1e-3)

    fresh = LearnerGroup(_spec(base, base, world_size=1))
    try:
        assert fresh.load_checkpoint(str(tmp_path / "weights_only")) is False
        fresh.advance_schedule(2)
        lrs_fresh = _train(fresh, [3, 4])
        final_fresh = fresh.full_state_dict()
    finally:
        fresh.shutdown()
    assert lrs_fresh == lrs_a[2:]  # same schedule, but fresh AdamW moments: other weights
    worst = max(float((final_fresh[n] - t).abs().max()) for n, t in final_a.items())
    assert worst > 1e-4


def test_hf_form_and_export_hold_the_learners_weights(ray_local, tiny_llama, tmp_path):
    """``hf=True`` streams safetensors from rank 0 bucket by bucket; `rlkit export` rebuilds the same
    folder from the shards alone; transformers loads both with exactly the learners' weights."""
    from transformers import AutoModelForCausalLM

    from rlkit.checkpoint import HF_INDEX
    from rlkit.cli import main
    from rlkit.learner.group import LearnerGroup

    base = str(tiny_llama)
    a = LearnerGroup(_spec(base, base, world_size=2))
    try:
        _train(a, [1])
        a.save_checkpoint(str(tmp_path / "ckpt"), base, hf=True)
        learner_sd = a.full_state_dict()
    finally:
        a.shutdown()
    assert (tmp_path / "ckpt" / HF_INDEX).is_file()
    assert main(["export", str(tmp_path / "ckpt"), "--out", str(tmp_path / "exported")]) == 0
    for folder in ("ckpt", "exported"):
        state = AutoModelForCausalLM.from_pretrained(tmp_path / folder, dtype=torch.float32).state_dict()
        for name, tensor in learner_sd.items():
            torch.testing.assert_close(state[name], tensor, rtol=0, atol=0, msg=f"{folder}: {name}")
