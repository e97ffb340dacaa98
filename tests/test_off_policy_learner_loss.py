"""Off-policy mini-batches through the real learner (FSDP2, gloo, tiny Llama) take exactly each clip
loss's own gradient: the update of a mini-batch whose old log-probs differ from the current ones (ratios
0.55-1.8, tokens in both clip zones) equals, parameter by parameter, the gradient of
``compute_policy_loss`` on the whole mini-batch computed by hand. So what the trainer does with
``num_mini_batches > 1`` is the loss of docs/algorithms.md, for GPPO's boundary gradients, CE-GPPO's
β terms and ASPO's flipped ratios alike; and GPPO's update really differs from ppo_clip's there.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from testkit import GradientRecorder
from test_packing import _batch

from rlkit.algorithms import compute_policy_loss

LOSSES = ("ppo_clip", "gppo", "ce_gppo", "aspo")


@pytest.fixture(scope="module")
def learner(tiny_llama):
    from rlkit.algorithm_config import AlgorithmConfig
    from rlkit.config import LearnerConfig, ModelConfig
    from rlkit.learner.worker import LearnerSpec, LearnerWorker, free_port

    spec = LearnerSpec(
        model=ModelConfig(path=str(tiny_llama), gradient_checkpointing=False),
        learner=LearnerConfig(world_size=1, backend="gloo", threads=1, max_grad_norm=1e9, micro_batch_size=2),
        algorithm=AlgorithmConfig(), temperature=1.0, total_steps=1, norm_len=40,
    )  # fmt: skip
    worker = LearnerWorker(rank=0, world_size=1, spec=spec)
    worker.setup("127.0.0.1", free_port())
    yield worker
    worker.shutdown()


def _off_policy_batch(worker):
    batch = _batch(7)
    current = worker.compute_logprobs(batch, with_entropy=False)["logprobs"]
    shift = (torch.rand(current.shape, generator=torch.Generator().manual_seed(0)) - 0.5) * 1.2  # log r in +-0.6
    batch.old_logprobs = (current + shift) * batch.response_mask
    return batch


def _grads(worker, loss: str, batch, *, by_hand: bool) -> dict[str, torch.Tensor]:
    from rlkit.algorithm_config import AlgorithmConfig

    worker.spec = dataclasses.replace(worker.spec, algorithm=AlgorithmConfig(loss=loss, sft_coef=0.0))
    worker.optimizer = recorder = GradientRecorder(worker.policy, 0)
    if by_hand:  # one padded forward of the whole mini-batch, the loss function, backward
        logprobs, _ = worker.policy(batch, temperature=1.0, chunk_size=16, with_entropy=False)
        mask = batch.response_mask
        loss_value, _ = compute_policy_loss(loss, logprobs, batch.old_logprobs, batch.advantages, mask, loss_agg="token-mean")
        loss_value.backward()
        recorder.step()
        recorder.zero_grad()
    else:  # the learner: packed micro-batches of 2 rows, each weighted by its share of the tokens
        worker.train_mini_batch(batch, **batch.loss_totals())
    (grads,) = recorder.grads
    return grads


@pytest.mark.parametrize("loss", LOSSES)
def test_learner_off_policy_gradient_is_the_loss_functions(learner, loss):
    batch = _off_policy_batch(learner)
    current = learner.compute_logprobs(batch, with_entropy=False)["logprobs"]
    r = (current - batch.old_logprobs).exp()[batch.response_mask.bool()]
    adv = batch.advantages[:, None].expand_as(batch.response_mask)[batch.response_mask.bool()]
    assert ((adv > 0) & (r > 1.28)).any() and ((adv < 0) & (r < 0.8)).any()  # both clip zones hold tokens
    got = _grads(learner, loss, batch, by_hand=False)
    want = _grads(learner, loss, batch, by_hand=True)
    for name, g in want.items():
        atol = max(1e-6, 1e-5 * float(g.abs().max()))  # fp32 summation order, as in tests/test_packing.py
        torch.testing.assert_close(got[name], g, rtol=0, atol=atol, msg=lambda m: f"{loss}: {name}: {m}")


def test_gppo_update_differs_from_ppo_clip_off_policy(learner):
    batch = _off_policy_batch(learner)
    gppo = _grads(learner, "gppo", batch, by_hand=False)
    clip = _grads(learner, "ppo_clip", batch, by_hand=False)
    diff = max(float((gppo[n] - clip[n]).abs().max() / clip[n].abs().max().clamp_min(1e-12)) for n in clip)
    assert diff > 1e-2  # the clipped tokens' boundary gradients: far above fp32 noise (1e-5)
