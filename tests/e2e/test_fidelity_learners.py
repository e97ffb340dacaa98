"""Rollout correction, the KL reward's log-probs and non-finite steps, through real FSDP2 learners.

Two gloo ranks on the tiny random Llama (no engine: the engine's log-probs are set by hand, which
is the point: they must be what the correction weighs and what the KL reward ignores). One
learner group backs every test; the tests run in file order.
"""

from __future__ import annotations

import math
import types

import pytest
import torch

pytestmark = pytest.mark.slow

CLIP = 1.5
# d = old − engine log-prob, cycled over the 14 response tokens: token ratios e^d = 1.65, 0.82, 1, 2.72
PATTERN = [0.5, -0.2, 0.0, 1.0]


def _config(model):
    from rlkit.config import load_config

    return load_config("examples/arithmetic_grpo.yaml", overrides=[
        f"model.path={model}", "learner.world_size=2", "learner.backend=gloo", "learner.lr=1e-3",
        "learner.micro_batch_size=2", "learner.threads=1", "model.gradient_checkpointing=false",
        "algorithm.kl.coef=0.1", "algorithm.kl.target=reward", "algorithm.kl.kind=k3",
        "algorithm.rollout_correction.kind=tis", f"algorithm.rollout_correction.clip={CLIP}",
        "trainer.max_skipped_steps=2", "trainer.num_mini_batches=1",
    ])  # fmt: skip


def _batch(*, advantages=(1.0, -1.0, -1.0, 1.0), seed=0):
    from rlkit.batch import build_batch

    g = torch.Generator().manual_seed(seed)
    prompts = [torch.randint(3, 200, (3,), generator=g).tolist() for _ in range(4)]
    responses = [torch.randint(3, 200, (n,), generator=g).tolist() for n in (4, 2, 5, 3)]
    return build_batch(
        prompt_ids=prompts, response_ids=responses, rollout_logprobs=[[0.0] * len(r) for r in responses],
        group_ids=[0, 0, 1, 1], rewards=[1.0, 0.0, 0.0, 1.0], advantages=torch.tensor(advantages),
        pad_token_id=0,
    )  # fmt: skip


def _shifted(old, mask):
    """Engine log-probs ``old − d`` with d cycling through PATTERN over the valid tokens."""
    d = torch.zeros_like(old)
    d[mask > 0] = torch.tensor(PATTERN * 4)[: int(mask.sum())]
    return old - d, d


@pytest.fixture(scope="module")
def setup(tiny_llama):
    import ray

    from rlkit.learner.group import LearnerGroup
    from rlkit.learner.worker import LearnerSpec

    started = not ray.is_initialized()
    if started:
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    cfg = _config(tiny_llama)
    spec = LearnerSpec(
        model=cfg.model, learner=cfg.learner, algorithm=cfg.algorithm, temperature=1.0,
        total_steps=10, norm_len=8, reference_path=str(tiny_llama),
    )  # fmt: skip
    group = LearnerGroup(spec)
    yield cfg, group
    group.shutdown()
    if started:
        ray.shutdown()


def _driver(cfg, group):
    from rlkit.trainer import Trainer

    trainer = Trainer.__new__(Trainer)  # the real step methods, on real learners; no engines needed
    trainer.config, trainer.learners, trainer.step, trainer._skipped_in_a_row = cfg, group, 0, 0
    trainer.agent = None  # single-turn rollouts
    trainer.tokenizer = types.SimpleNamespace(pad_token_id=0)
    return trainer


def test_tis_weights_enter_the_loss_and_mismatch_kl_is_logged(setup):
    cfg, group = setup
    batch = _batch()
    mask = batch.response_mask
    old = group.compute_logprobs(batch, with_entropy=False)["logprobs"]
    batch.rollout_logprobs, d = _shifted(old, mask)
    out = group.train_mini_batch(batch)
    group.end_step()
    # On-policy ppo_clip (r = 1): ℓ_t = −A·w_t with w_t = min(e^d, 1.5); token-mean over the 14 tokens.
    w = torch.where(mask > 0, d.exp().clamp(max=CLIP), torch.zeros_like(d))
    adv = batch.advantages[:, None]
    expected_loss = float(-(adv * w * mask).sum() / mask.sum())
    assert out["policy_loss"] == pytest.approx(expected_loss, abs=1e-5)
    assert expected_loss != pytest.approx(float(-(adv * mask).sum() / mask.sum()), abs=1e-2)  # w mattered
    kl = float(((d.exp() - d - 1) * mask).sum() / mask.sum())
    assert out["rollout/mismatch_kl"] == pytest.approx(kl, abs=1e-5)
    assert out["rollout/is_weight_mean"] == pytest.approx(float(w.sum() / mask.sum()), abs=1e-5)
    # e^0.5 = 1.65 and e^1 = 2.72 exceed C = 1.5: 4 + 3 of the 14 tokens
    assert out["rollout/is_over_clip_frac"] == pytest.approx(7 / 14)
    assert out["skipped"] == 0.0


def test_kl_reward_uses_the_learners_old_logprobs(setup):
    from rlkit.algorithms import compute_advantages, kl_penalty
    from rlkit.rollout.types import Completion
    from rlkit.trainer import Rollouts

    cfg, group = setup  # the policy took one step above: it now differs from the reference
    probe = _batch()
    prompts = [row[probe.attention_mask[i, : probe.prompt_len] > 0].tolist() for i, row in enumerate(probe.input_ids[:, : probe.prompt_len])]
    responses = [probe.response_ids[i][probe.response_mask[i] > 0].tolist() for i in range(probe.size)]
    rollouts = Rollouts(
        rows=[{}] * 4, prompt_ids=prompts,
        completions=[Completion(prompt_index=0, token_ids=r, logprobs=[-30.0] * len(r), text="", finish_reason="stop")
                     for r in responses],
        group_ids=[0, 0, 1, 1], task_scores=[1.0, 0.0, 0.0, 1.0], rewards=[1.0, 0.0, 0.0, 1.0],
    )  # fmt: skip
    batch = _driver(cfg, group).make_batch(rollouts)
    old = group.compute_logprobs(batch, with_entropy=False)["logprobs"]
    ref = group.compute_logprobs(batch, with_entropy=False, reference=True)["logprobs"]
    torch.testing.assert_close(batch.old_logprobs, old, rtol=0, atol=1e-6)  # computed once, reused by update()
    kl = (kl_penalty(old, ref, "k3") * batch.response_mask).sum(dim=1)
    assert float(kl.max()) > 1e-6  # the policy moved, so the reward term is not trivially 0
    expected = compute_advantages("grpo", torch.tensor([1.0, 0.0, 0.0, 1.0]) - 0.1 * kl, torch.tensor([0, 0, 1, 1]))
    torch.testing.assert_close(batch.advantages, expected.float(), rtol=0, atol=1e-5)
    # with the engine's (here absurd, −30) log-probs the reward would have been far off
    engine_kl = (kl_penalty(batch.rollout_logprobs, ref, "k3") * batch.response_mask).sum(dim=1)
    assert float((engine_kl - kl).abs().min()) > 1.0


def test_non_finite_gradient_skips_the_step_on_every_rank(setup):
    cfg, group = setup
    before = group.full_state_dict()
    bad = _batch(advantages=(math.inf, -1.0, -1.0, 1.0))  # row 0 sits on rank 0 only; rank 1's rows are finite
    out = group.train_mini_batch(bad)
    group.end_step()
    assert not math.isfinite(out["grad_norm"]) and out["skipped"] == 1.0
    after = group.full_state_dict()
    for name, tensor in before.items():
        torch.testing.assert_close(after[name], tensor, rtol=0, atol=0, msg=name)  # no rank stepped
        assert torch.isfinite(after[name]).all()


def test_consecutive_skips_stop_the_run_naming_step_and_loss_terms(setup):
    from rlkit.trainer import NonFiniteStepError

    cfg, group = setup  # trainer.max_skipped_steps=2, one mini-batch per step
    trainer = _driver(cfg, group)
    inf_adv = (math.inf, -1.0, -1.0, 1.0)
    trainer.step = 1
    assert trainer.update(_batch(advantages=inf_adv))["train/skipped_steps"] == 1.0
    before = group.full_state_dict()
    trainer.step = 2  # a finite step in between resets the count, and really updates
    assert trainer.update(_batch(seed=2))["train/skipped_steps"] == 0.0
    after = group.full_state_dict()
    assert max(float((after[n] - t).abs().max()) for n, t in before.items()) > 1e-5
    trainer.step = 3
    assert trainer.update(_batch(advantages=inf_adv))["train/skipped_steps"] == 1.0
    trainer.step = 4
    with pytest.raises(NonFiniteStepError, match=r"step 4: 2 optimizer steps in a row had a non-finite gradient norm "
                                                 r"\(trainer.max_skipped_steps=2\); last loss terms: loss=-?(nan|inf), "
                                                 r"policy_loss=-?(nan|inf)"):
        trainer.update(_batch(advantages=inf_adv))
    final = group.full_state_dict()
    for name, tensor in after.items():
        torch.testing.assert_close(final[name], tensor, rtol=0, atol=0, msg=name)
