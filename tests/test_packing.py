"""Packed sequences, token-budget micro-batches and token-balanced ranks (rlkit/learner/packing.py).

The gradient tests run the real FSDP2 learner (gloo) on the tiny Llama: every way of
cutting a mini-batch (padded rows, packed rows, token budgets, 1-4 ranks balanced by
tokens) must give the whole-mini-batch gradient, for every loss_agg. Advantages are
within +-0.5 over sequences of 2-40 tokens; the tolerance, 1e-5 of each tensor's largest
entry (at least 1e-6), is float32 rounding, while a
wrong piece weight or a token attending across a packed boundary moves gradients by
percents.
"""

from __future__ import annotations

import dataclasses
import os

import pytest
import torch
from testkit import GradientRecorder

from rlkit.algorithms.aggregation import AGG_MODES
from rlkit.batch import build_batch
from rlkit.learner.packing import (
    balance_ranks,
    balanced_shards,
    pack_rows,
    packing_unsupported,
    plan_micro_batches,
    token_imbalance,
)


def _batch(rows: int = 7, *, seed: int = 3):
    """Prompts of 1-6 tokens, responses of 1-33 tokens (one long tail), one response with a masked
    middle (a tool output: attended, not trained)."""
    g = torch.Generator().manual_seed(seed)
    plens = torch.randint(1, 7, (rows,), generator=g).tolist()
    rlens = torch.randint(1, 9, (rows,), generator=g).tolist()
    rlens[1] = 33
    prompts = [torch.randint(3, 200, (n,), generator=g).tolist() for n in plens]
    responses = [torch.randint(3, 200, (n,), generator=g).tolist() for n in rlens]
    loss_mask = [[1] * n for n in rlens]
    loss_mask[1][10:20] = [0] * 10
    return build_batch(
        prompt_ids=prompts, response_ids=responses, rollout_logprobs=[[-1.0] * n for n in rlens],
        group_ids=[i // 2 for i in range(rows)], rewards=[float(i % 2) for i in range(rows)],
        advantages=torch.linspace(-0.5, 0.5, rows), loss_mask=loss_mask,
        sft_select=[i % 3 == 0 for i in range(rows)], pad_token_id=0,
    )  # fmt: skip


# ---------------------------------------------------------------- planning (pure)


def test_pack_rows_lays_sequences_end_to_end():
    b = build_batch(
        prompt_ids=[[5, 6, 7], [8]], response_ids=[[9, 10], [11, 12, 13]],
        rollout_logprobs=[[0.0, 0.0], [0.0, 0.0, 0.0]], group_ids=[0, 0], rewards=[0.0, 0.0],
        advantages=torch.zeros(2), pad_token_id=0,
    )  # fmt: skip
    row = pack_rows(b)
    assert row.input_ids.tolist() == [[5, 6, 7, 9, 10, 8, 11, 12, 13]]
    assert row.position_ids.tolist() == [[0, 1, 2, 3, 4, 0, 1, 2, 3]]
    # 9 is predicted by 7 (index 2), 10 by 9; 11 by 8 (index 5), 12 by 11, 13 by 12.
    assert row.predictors.tolist() == [2, 3, 5, 6, 7]
    assert row.cu_seqlens.tolist() == [0, 5, 9] and row.max_len == 5
    # A padding row (one attended prompt token) packs as a one-token sequence with nothing to predict.
    padded = pack_rows(b.pad_rows(3))
    assert padded.input_ids.shape == (1, 10) and padded.cu_seqlens.tolist() == [0, 5, 9, 10]


def test_pack_rows_refuses_a_row_with_a_hole():
    b = _batch(3)
    b.attention_mask[1, b.prompt_len + 2] = 0
    with pytest.raises(ValueError, match="row 1's attention_mask is not one contiguous run"):
        pack_rows(b)


def test_micro_batch_plans():
    lengths = [10, 3, 7, 2, 9, 1]
    assert plan_micro_batches(lengths, rows=4, max_tokens=None, packed=True) == [[0, 1, 2, 3], [4, 5]]
    # first-fit decreasing under 12 tokens: 10+2 | 9+3 | 7+1
    assert plan_micro_batches(lengths, rows=4, max_tokens=12, packed=True) == [[0, 3], [4, 1], [2, 5]]
    # padded cost = rows x longest: 10 | 9 | 7 | 3,2,1 (3 x 3 = 9 <= 12)
    assert plan_micro_batches(lengths, rows=4, max_tokens=12, packed=False) == [[0], [4], [2], [1, 3, 5]]
    # a sequence over the budget gets a micro-batch of its own
    assert plan_micro_batches([50, 2], rows=4, max_tokens=8, packed=True) == [[0], [1]]


def test_balance_ranks_by_tokens():
    lengths = [100, 10, 10, 10, 10, 60, 40]
    plan = balance_ranks(lengths, 2)
    assert plan == [[0, 1, 3], [2, 4, 5, 6]]  # 120 and 120 tokens; by position it would be 190 / 50
    assert token_imbalance([sum(lengths[i] for i in r) for r in plan]) == 1.0
    assert token_imbalance([190, 50]) == pytest.approx(190 / 120)
    assert sorted(i for r in balance_ranks(lengths, 4) for i in r) == list(range(7))


def test_balanced_shards_give_every_rank_a_row():
    b = _batch(2)
    shards, rows, _ = balanced_shards(b, 4)
    assert [s.size for s in shards] == [1, 1, 1, 1]
    assert sorted(i for r in rows for i in r) == [0, 1, 2, 3]
    pad = [s for s, r in zip(shards, rows) if r[0] >= 2]
    assert all(s.response_mask.sum() == 0 and s.attention_mask.sum() == 1 for s in pad)


def test_tiny_llama_can_pack_and_linear_attention_cannot(tiny_llama):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(tiny_llama)
    config._attn_implementation = "sdpa"
    assert packing_unsupported(config) is None
    config.layer_types = ["full_attention", "linear_attention"]
    assert "['linear_attention']" in packing_unsupported(config)


# ---------------------------------------------------------------- log-probs


def test_packed_logprobs_equal_padded(tiny_llama):
    """transformers 5.x's SDPA path detects the packed boundaries from position ids (no 2D mask, no
    cache): packed log-probs and entropies equal the padded ones, and attending across a boundary
    (one sequence's position ids running on) would not."""
    from transformers import AutoModelForCausalLM
    from transformers.masking_utils import find_packed_sequence_indices

    from rlkit.learner.policy import CausalLMPolicy

    policy = CausalLMPolicy(AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32, attn_implementation="sdpa"))
    b = _batch(7)
    row = pack_rows(b)
    assert find_packed_sequence_indices(row.position_ids)[0, -1] == b.size - 1  # seven sequences seen
    with torch.no_grad():
        padded, ent_padded = policy(b, temperature=0.7, chunk_size=16, with_entropy=True)
        packed, ent_packed = policy(b, temperature=0.7, chunk_size=16, with_entropy=True, packed=True)
    assert (packed[b.response_mask == 0] == 0).all()
    torch.testing.assert_close(packed, padded, rtol=0, atol=1e-5)
    torch.testing.assert_close(ent_packed, ent_padded, rtol=0, atol=1e-5)
    with torch.no_grad():  # control: one running position sequence = no boundaries = different numbers
        base = policy.hf.model
        hidden = base(input_ids=row.input_ids, position_ids=torch.arange(row.input_ids.shape[1])[None]).last_hidden_state
    leaked = hidden[0, row.predictors] - base(input_ids=row.input_ids, position_ids=row.position_ids).last_hidden_state[0, row.predictors]
    assert leaked.abs().max() > 1e-2


# ---------------------------------------------------------------- gradients



def _spec(tiny_llama, world_size: int, loss_agg: str):
    from rlkit.algorithm_config import AlgorithmConfig
    from rlkit.config import LearnerConfig, ModelConfig
    from rlkit.learner.worker import LearnerSpec

    return LearnerSpec(
        model=ModelConfig(path=str(tiny_llama), gradient_checkpointing=False),
        learner=LearnerConfig(world_size=world_size, backend="gloo", threads=1, max_grad_norm=1e9),
        algorithm=AlgorithmConfig(loss_agg=loss_agg, sft_coef=0.1), temperature=1.0, total_steps=1, norm_len=40,
    )  # fmt: skip


# (packing, micro_batch_size, max_tokens_per_micro_batch): the ways a rank cuts its rows
CUTS = [(False, 2, None), (True, 2, None), (True, 64, 30), (False, 64, 60), (True, 64, 1)]


def _run(worker, batch, *, rank: int = 0, world_size: int = 1) -> list:
    """The recorded gradient of one update per loss_agg x cut, then the whole batch in one padded piece."""
    worker.optimizer = GradientRecorder(worker.policy, rank)
    base = worker.spec
    for loss_agg in AGG_MODES:
        algo = base.algorithm.model_copy(update={"loss_agg": loss_agg})
        for packing, rows, budget in CUTS:
            learner = base.learner.model_copy(update={"packing": packing, "micro_batch_size": rows, "max_tokens_per_micro_batch": budget})
            worker.spec, worker._packed = dataclasses.replace(base, learner=learner, algorithm=algo), None
            shards, _, _ = balanced_shards(batch, world_size)
            worker.train_mini_batch(shards[rank], **batch.loss_totals())
    worker.spec = base
    return worker.optimizer.grads


def _whole_batch(worker, batch) -> list:
    worker.optimizer = GradientRecorder(worker.policy, 0)
    base = worker.spec
    for loss_agg in AGG_MODES:
        algo = base.algorithm.model_copy(update={"loss_agg": loss_agg})
        learner = base.learner.model_copy(update={"packing": False, "micro_batch_size": batch.size})
        worker.spec, worker._packed = dataclasses.replace(base, learner=learner, algorithm=algo), None
        worker.train_mini_batch(batch, **batch.loss_totals())
    worker.spec = base
    return worker.optimizer.grads


def _rank_main(rank: int, world_size: int, spec, port: int, out: str) -> None:
    from rlkit.learner.worker import LearnerWorker

    worker = LearnerWorker(rank=rank, world_size=world_size, spec=spec)
    worker.setup("127.0.0.1", port)
    grads = _run(worker, _batch(7), rank=rank, world_size=world_size)
    if rank == 0:
        torch.save(grads, out)
    torch.distributed.barrier()  # every rank done with its collectives before any leaves the group
    worker.shutdown()
    # Skip interpreter teardown: gloo's threads at static destruction sometimes abort a finished rank
    # ("terminate called without an active exception"), failing a run whose results were already saved.
    os._exit(0)


@pytest.fixture(scope="module")
def whole_batch_grads(tiny_llama):
    from rlkit.learner.worker import LearnerWorker, free_port

    worker = LearnerWorker(rank=0, world_size=1, spec=_spec(tiny_llama, 1, "token-mean"))
    worker.setup("127.0.0.1", free_port())
    try:
        whole = _whole_batch(worker, _batch(7))
        cuts = _run(worker, _batch(7))
    finally:
        worker.shutdown()
    return whole, cuts


def _assert_equal_to_whole(got: list, whole: list, what: str) -> None:
    assert len(got) == len(whole) * len(CUTS)
    for k, grads in enumerate(got):
        agg, cut = list(AGG_MODES)[k // len(CUTS)], CUTS[k % len(CUTS)]
        want = whole[k // len(CUTS)]
        assert sum(float(g.abs().sum()) for g in want.values()) > 0, f"{agg}: no gradient at all"
        for name, g in want.items():
            # fp32 summation order differs between cuts (the embedding sums every occurrence of a token):
            # 1e-5 of the tensor's largest entry, at least 1e-6; a wrong scale or a lost token is ~1e-1.
            atol = max(1e-6, 1e-5 * float(g.abs().max()))
            torch.testing.assert_close(grads[name], g, rtol=0, atol=atol, msg=lambda m: f"{what}, {agg}, {cut}: {name}: {m}")


def test_packed_padded_and_token_budget_gradients_equal_the_whole_batch(whole_batch_grads):
    whole, cuts = whole_batch_grads
    _assert_equal_to_whole(cuts, whole, "1 rank")


@pytest.mark.slow  # three process groups of 2-4 ranks: 8 minutes at load average ~30 on 2 cores
@pytest.mark.parametrize("world_size", [2, 3, 4])
def test_balanced_ranks_gradients_equal_the_whole_batch(world_size, whole_batch_grads, tiny_llama, tmp_path):
    import torch.multiprocessing as mp

    from rlkit.learner.worker import free_port

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    out = str(tmp_path / "grads.pt")
    mp.spawn(_rank_main, args=(world_size, _spec(tiny_llama, world_size, "token-mean"), free_port(), out), nprocs=world_size, join=True)
    _assert_equal_to_whole(torch.load(out, weights_only=True), whole_batch_grads[0], f"{world_size} ranks")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_packed_logprobs_sdpa_and_flash_attention_varlen(tiny_llama):
    """On CUDA: packed SDPA (fp32) equals padded to 1e-5; flash-attn's varlen kernel (bf16, from the
    packed row's cu_seqlens) tracks padded bf16 SDPA to bf16 rounding."""
    from transformers import AutoModelForCausalLM

    from rlkit.batch import TrainBatch
    from rlkit.learner.policy import CausalLMPolicy

    b = _batch(7)
    cuda = TrainBatch(**{k: (v.cuda() if isinstance(v, torch.Tensor) else v) for k, v in vars(b).items()})
    sdpa = CausalLMPolicy(AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32, attn_implementation="sdpa")).cuda()
    with torch.no_grad():
        padded, _ = sdpa(cuda, temperature=1.0, chunk_size=16, with_entropy=False)
        packed, _ = sdpa(cuda, temperature=1.0, chunk_size=16, with_entropy=False, packed=True)
    torch.testing.assert_close(packed, padded, rtol=0, atol=1e-5)
    pytest.importorskip("flash_attn")
    flash = CausalLMPolicy(AutoModelForCausalLM.from_pretrained(
        tiny_llama, dtype=torch.bfloat16, attn_implementation="flash_attention_2")).cuda()  # fmt: skip
    sdpa16 = sdpa.to(torch.bfloat16)
    with torch.no_grad():
        varlen, _ = flash(cuda, temperature=1.0, chunk_size=16, with_entropy=False, packed=True)
        reference, _ = sdpa16(cuda, temperature=1.0, chunk_size=16, with_entropy=False)
    valid = b.response_mask.cuda() > 0
    assert float((varlen - reference).abs()[valid].mean()) < 2e-2
