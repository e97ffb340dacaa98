"""RLEP (algorithms.md section 10): replay pools, and replayed answers joining their prompt's group."""

from __future__ import annotations

import json
import math
import random
from types import SimpleNamespace

import pytest
import torch

from rlkit.replay import PooledResponse, ReplayPool, prompt_key


def _answer(*ids: int, score: float = 1.0) -> PooledResponse:
    return PooledResponse(token_ids=ids, text=" ".join(map(str, ids)), score=score)


def test_prompt_keys_are_the_token_ids_not_their_text():
    assert prompt_key([1, 2, 3]) == prompt_key((1, 2, 3))
    assert len({prompt_key([1, 2, 3]), prompt_key([1, 23]), prompt_key([12, 3]), prompt_key([])}) == 4


def test_pool_round_trips_through_jsonl(tmp_path):
    pool = ReplayPool()
    pool.add([5, 6], [_answer(7, 8), _answer(9)])
    pool.add([10], [PooledResponse(token_ids=(11,), text="x", score=0.5, truncated=True)])
    pool.save(tmp_path / "pool.jsonl")
    loaded = ReplayPool.load(tmp_path / "pool.jsonl")
    assert len(loaded) == 2 and loaded.num_responses == 3
    assert loaded.responses([5, 6]) == [_answer(7, 8), _answer(9)]
    assert loaded.responses([10]) == [PooledResponse(token_ids=(11,), text="x", score=0.5, truncated=True)]
    assert loaded.responses([5]) == []


def test_sampling_draws_without_replacement_and_is_seeded():
    pool = ReplayPool()
    pool.add([1], [_answer(i) for i in range(10)])
    draws = [pool.sample([1], 2, random.Random(s)) for s in range(50)]
    assert all(len(d) == 2 and d[0] != d[1] for d in draws)
    assert pool.sample([1], 2, random.Random(3)) == pool.sample([1], 2, random.Random(3))
    assert len({d[0].token_ids for d in draws}) > 5  # every answer can be drawn
    assert sorted(a.token_ids for a in pool.sample([1], 99, random.Random(0))) == [(i,) for i in range(10)]
    assert pool.sample([2], 2, random.Random(0)) == []  # no pool for this prompt


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "pool.jsonl:2: not a JSON object"),
        ('{"responses": []}', "pool.jsonl:2: missing field 'prompt_ids'"),
        ('{"prompt_ids": [1], "responses": [{"token_ids": [], "score": 1}]}',
         "pool.jsonl:2: responses[0]: field 'token_ids' must be a non-empty list of ints"),
        ('{"prompt_ids": [1], "responses": [{"token_ids": [2]}]}', "pool.jsonl:2: responses[0]: missing field 'score'"),
        ('{"prompt_ids": [1], "responses": [{"token_ids": [2], "score": "1"}]}',
         "responses[0]: field 'score' must be a number, got str"),
        ('{"prompt_key": "abc", "prompt_ids": [1], "responses": []}', "pool.jsonl:2: prompt_key does not match"),
    ],
)  # fmt: skip
def test_a_broken_pool_line_is_named(tmp_path, line, message):
    good = json.dumps({"prompt_ids": [1], "responses": [{"token_ids": [2], "score": 1.0}]})
    (tmp_path / "pool.jsonl").write_text(good + "\n" + line + "\n")
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        ReplayPool.load(tmp_path / "pool.jsonl")


def test_a_missing_pool_says_how_to_make_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="rlkit collect-pool"):
        ReplayPool.load(tmp_path / "nope.jsonl")


def _trainer_without_workers(tmp_path, pool: ReplayPool, per_prompt: int):
    """A Trainer holding only what add_replayed and make_batch use (no Ray, engines or learners)."""
    from rlkit import load_config
    from rlkit.trainer import Trainer

    trainer = object.__new__(Trainer)
    trainer.config = load_config(
        "examples/arithmetic_grpo.yaml", overrides=[f"output_dir={tmp_path}", f"replay.per_prompt={per_prompt}"]
    )
    trainer.replay, trainer.step, trainer.agent = pool, 1, None
    trainer.tokenizer = SimpleNamespace(pad_token_id=0)
    return trainer


def _fresh_rollouts(prompts: dict[int, list[int]], rewards: dict[int, list[float]]):
    from rlkit.rollout.types import Completion
    from rlkit.trainer import Rollouts

    out = Rollouts()
    for group, prompt in prompts.items():
        for j, r in enumerate(rewards[group]):
            out.rows.append({"prompt": f"p{group}"})
            out.prompt_ids.append(prompt)
            out.completions.append(Completion(prompt_index=group, token_ids=[40 + j, 50], logprobs=[-0.5, -0.25],
                                              text="a", finish_reason="stop"))  # fmt: skip
            out.group_ids.append(group)
            out.task_scores.append(r)
            out.rewards.append(r)
    return out


def test_replayed_answers_join_their_group_and_share_its_baseline(tmp_path):
    pool = ReplayPool()
    pool.add([1, 2], [_answer(7, 8, 9), _answer(6), _answer(5, 5)])  # group 0's prompt; group 1 has no pool
    trainer = _trainer_without_workers(tmp_path, pool, per_prompt=2)
    rollouts = _fresh_rollouts({0: [1, 2], 1: [3]}, {0: [0.0, 0.0, 0.0, 1.0], 1: [0.0, 1.0]})

    metrics = trainer.add_replayed(rollouts)
    assert metrics == {"replay/samples": 2.0, "replay/groups_with_pool": 0.5}
    assert rollouts.group_ids == [0, 0, 0, 0, 1, 1, 0, 0]
    replayed = rollouts.completions[6:]
    assert all(c.info == {"replayed": True} for c in replayed) and rollouts.rewards[6:] == [1.0, 1.0]
    assert {tuple(c.token_ids) for c in replayed} <= {(7, 8, 9), (6,), (5, 5)}
    assert rollouts.prompt_ids[6:] == [[1, 2], [1, 2]]

    batch = trainer.make_batch(rollouts)
    # Group 0 is [0, 0, 0, 1] fresh + [1, 1] replayed: mean 1/2, unbiased std sqrt(3/10).
    a = 0.5 / (math.sqrt(0.3) + 1e-6)
    expected = [-a, -a, -a, a, -1 / (math.sqrt(0.5) + 1e-6) * 0.5, 1 / (math.sqrt(0.5) + 1e-6) * 0.5, a, a]
    torch.testing.assert_close(batch.advantages, torch.tensor(expected), rtol=0, atol=1e-6)
    assert batch.replayed.tolist() == [False] * 6 + [True, True]
    assert batch.sft_select.tolist() == [False, False, False, True, False, True, True, True]
    lengths = batch.response_mask.sum(1).tolist()
    assert lengths[6:] == [len(c.token_ids) for c in replayed]  # every replayed token is trained on


def test_without_a_pool_entry_nothing_is_added(tmp_path):
    trainer = _trainer_without_workers(tmp_path, ReplayPool(), per_prompt=2)
    rollouts = _fresh_rollouts({0: [1, 2]}, {0: [0.0, 1.0]})
    assert trainer.add_replayed(rollouts) == {"replay/samples": 0.0, "replay/groups_with_pool": 0.0}
    assert len(rollouts) == 2


def test_a_pool_written_in_part_is_still_a_valid_pool(tmp_path):
    from rlkit.replay import PoolWriter

    writer = PoolWriter(tmp_path / "pool.jsonl")
    writer.write([1, 2], [_answer(3), _answer(4)])  # collection cut short here: the file was flushed
    partial = ReplayPool.load(tmp_path / "pool.jsonl")
    assert (len(partial), partial.num_responses, writer.prompts, writer.responses) == (1, 2, 1, 2)
    writer.close()
