"""Any world size with any batch size: every rank takes part, padding carries no loss and no gradient.

One FSDP2 (gloo) learner group per world size (1-4 ranks, torch multiprocessing), each
running mini-batches of 1-9 rows: with 4 ranks and 1-3 rows some ranks get only
padding rows, with 4 ranks and 5 rows the last shard is made of padding only
(the case that used to leave a prompt length of 0). The gradient each step
produces, gathered to full tensors, equals the one-rank gradient of the same batch.

Advantages are within +-0.1 (max |g| about 0.1), so atol 1e-6 is about 1e-5 of the
largest gradient: float32 rounding alone (rows padded into one micro-batch with other
prompt lengths, a loss scaled by 3 ranks) moves gradients by up to 3e-6 relative.
A padding row that leaked loss, or a wrong rank weight, moves them by percents.
"""

from __future__ import annotations

import os

import pytest
import torch
from testkit import GradientRecorder

pytestmark = pytest.mark.slow  # four process groups, about two minutes

BATCH_SIZES = range(1, 10)


def _batch(rows: int):
    from rlkit.batch import build_batch

    g = torch.Generator().manual_seed(100 + rows)
    prompts = [torch.randint(3, 200, (int(torch.randint(1, 6, (1,), generator=g)),), generator=g).tolist()
               for _ in range(rows)]  # fmt: skip
    responses = [torch.randint(3, 200, (int(torch.randint(1, 5, (1,), generator=g)),), generator=g).tolist()
                 for _ in range(rows)]  # fmt: skip
    return build_batch(
        prompt_ids=prompts, response_ids=responses,
        rollout_logprobs=[[-1.0] * len(r) for r in responses], group_ids=[i // 2 for i in range(rows)],
        rewards=[float(i % 2) for i in range(rows)], advantages=torch.linspace(-0.1, 0.1, rows),
        pad_token_id=0,
    )  # fmt: skip



def _rank_main(rank: int, world_size: int, spec, port: int, out: str) -> None:
    from rlkit.learner.worker import LearnerWorker

    worker = LearnerWorker(rank=rank, world_size=world_size, spec=spec)
    worker.setup("127.0.0.1", port)
    worker.optimizer = GradientRecorder(worker.policy, rank)
    for rows in BATCH_SIZES:
        batch = _batch(rows)
        shard = batch.shards(world_size)[rank]
        worker.train_mini_batch(shard, **batch.loss_totals())
    if rank == 0:
        torch.save(worker.optimizer.grads, out)
    torch.distributed.barrier()  # every rank done with its collectives before any leaves the group
    worker.shutdown()
    # Skip interpreter teardown: gloo's threads at static destruction sometimes abort a finished rank
    # ("terminate called without an active exception"), failing a run whose results were already saved.
    os._exit(0)


def _gradients(tiny_llama, tmp_path, world_size: int) -> list[dict[str, torch.Tensor]]:
    import torch.multiprocessing as mp

    from rlkit.algorithm_config import AlgorithmConfig
    from rlkit.config import LearnerConfig, ModelConfig
    from rlkit.learner.worker import LearnerSpec, free_port

    spec = LearnerSpec(
        model=ModelConfig(path=str(tiny_llama)),
        learner=LearnerConfig(world_size=world_size, backend="gloo", micro_batch_size=2, threads=1, max_grad_norm=1e9),
        algorithm=AlgorithmConfig(), temperature=1.0, total_steps=1, norm_len=8,
    )  # fmt: skip
    out = str(tmp_path / f"grads-{world_size}.pt")
    mp.spawn(_rank_main, args=(world_size, spec, free_port(), out), nprocs=world_size, join=True)
    return torch.load(out, weights_only=True)


@pytest.fixture(scope="module")
def one_rank(tiny_llama, tmp_path_factory):
    return _gradients(tiny_llama, tmp_path_factory.mktemp("ws1"), 1)


def test_pad_only_shard_keeps_a_prompt_column():
    """4 ranks x 5 rows: the last shard is all padding; trimmed() must leave it a prompt to predict from."""
    batch = _batch(5)
    last = batch.shards(4)[3]
    assert last.size == 2 and last.response_mask.sum() == 0
    micro = last.trimmed()
    assert micro.prompt_len == 1 and micro.response_len == 1
    assert micro.attention_mask.sum(dim=1).tolist() == [1, 1]  # each row attends exactly its one prompt token


@pytest.mark.parametrize("world_size", [2, 3, 4])
def test_gradient_equals_single_rank_for_batch_sizes_1_to_9(world_size, one_rank, tiny_llama, tmp_path):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    grads = _gradients(tiny_llama, tmp_path, world_size)
    assert len(grads) == len(one_rank) == len(BATCH_SIZES)
    for rows, (got, want) in enumerate(zip(grads, one_rank), start=1):
        assert got.keys() == want.keys()
        assert sum(float(g.abs().sum()) for g in want.values()) > 0, f"{rows} rows: no gradient at all"
        for name, g in want.items():
            torch.testing.assert_close(got[name], g, rtol=0, atol=1e-6, msg=lambda m: f"{world_size} ranks, {rows} rows: {name}: {m}")
