"""The padded batch layout and the learner's log-probs against a plain HF forward."""

from __future__ import annotations

import torch

from rlkit.batch import build_batch, concat


def _batch():
    return build_batch(
        prompt_ids=[[5, 6, 7], [8]], response_ids=[[9, 10], [11, 12, 13]],
        rollout_logprobs=[[-0.5, -0.25], [-1.0, -2.0, -3.0]], group_ids=[4, 4], rewards=[1.0, 0.0],
        advantages=torch.tensor([0.7, -0.7]), sft_select=[True, False], pad_token_id=0,
    )


def test_layout_left_pads_prompts_and_right_pads_responses():
    b = _batch()
    assert b.prompt_len == 3 and b.response_len == 3
    assert b.input_ids.tolist() == [[5, 6, 7, 9, 10, 0], [0, 0, 8, 11, 12, 13]]
    assert b.attention_mask.tolist() == [[1, 1, 1, 1, 1, 0], [0, 0, 1, 1, 1, 1]]
    assert b.response_mask.tolist() == [[1, 1, 0], [1, 1, 1]]
    assert b.rollout_logprobs.tolist() == [[-0.5, -0.25, 0.0], [-1.0, -2.0, -3.0]]
    assert b.response_ids.tolist() == [[9, 10, 0], [11, 12, 13]]


def test_pad_rows_adds_rows_that_carry_nothing():
    b = _batch().pad_rows(4)
    assert b.size == 4
    assert b.response_mask[2:].sum() == 0 and not b.sft_select[2:].any()
    assert b.attention_mask[2:].sum(dim=1).tolist() == [1, 1]  # one attended token: no NaN in attention
    halves = b.chunks(2)
    assert [h.size for h in halves] == [2, 2]
    assert torch.equal(concat(halves).input_ids, b.input_ids)


def test_trimmed_drops_shared_padding_and_keeps_alignment():
    b = _batch().select([0])
    t = b.trimmed()
    assert t.prompt_len == 3 and t.response_len == 2
    assert t.input_ids.tolist() == [[5, 6, 7, 9, 10]]
    b2 = _batch().select([1]).trimmed()
    assert b2.prompt_len == 1 and b2.input_ids.tolist() == [[8, 11, 12, 13]]
    assert b2.response_ids.tolist() == [[11, 12, 13]]


def test_policy_logprobs_match_hf_forward_per_sequence(tiny_llama):
    """Left padding, position ids and the hidden-state offset are right: each row's log-probs
    equal those of the same sequence run alone, unpadded, through the HF model."""
    from transformers import AutoModelForCausalLM

    from rlkit.learner.policy import CausalLMPolicy

    hf = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)
    policy = CausalLMPolicy(hf)
    b = _batch()
    with torch.no_grad():
        logprobs, entropy = policy(b, temperature=0.7, chunk_size=2, with_entropy=True)
        for row, (prompt, response) in enumerate([([5, 6, 7], [9, 10]), ([8], [11, 12, 13])]):
            seq = torch.tensor([prompt + response])
            logits = hf(seq).logits[0, len(prompt) - 1 : -1] / 0.7
            ref = logits.log_softmax(-1)
            expected = ref.gather(-1, torch.tensor(response)[:, None])[:, 0]
            torch.testing.assert_close(logprobs[row, : len(response)], expected, rtol=1e-5, atol=1e-5)
            ref_entropy = -(ref.exp() * ref).sum(-1)
            torch.testing.assert_close(entropy[row, : len(response)], ref_entropy, rtol=1e-5, atol=1e-5)
    assert logprobs[0, 2] == 0  # padding position
    trimmed_lp, _ = policy(b.select([0]).trimmed(), temperature=0.7, chunk_size=4, with_entropy=False)
    torch.testing.assert_close(trimmed_lp[0], logprobs[0, :2], rtol=1e-5, atol=1e-5)
