"""ARPO branching against its formula (injected entropy stream and RNG) and soft/hard attribution on a hand-built tree."""

from __future__ import annotations

import math
import random
import re

import pytest
import torch

from rlkit.algorithms import compute_advantages
from rlkit.algorithms.arpo import ArpoTree, branch_probability, hard_attribution, normalized_entropy


def _tree(seed: int, *, budget=16, initial=8, beam=2, alpha=0.5, beta=0.2) -> ArpoTree:
    return ArpoTree(budget, initial, beam, alpha, beta, random.Random(seed))


def test_branch_probability_is_clipped_linear():
    assert branch_probability(0.0, alpha=0.5, beta=0.2) == 0.5
    assert branch_probability(1.0, alpha=0.5, beta=0.2) == pytest.approx(0.7)
    assert branch_probability(-5.0, alpha=0.5, beta=0.2) == 0.0  # 0.5 - 1.0 clipped
    assert branch_probability(5.0, alpha=0.5, beta=0.2) == 1.0  # 0.5 + 1.0 clipped


def test_branch_counts_match_the_formula_on_an_injected_entropy_stream():
    # A stream of (H_t, H_init) pairs; the expected decision replays the same RNG draws:
    # branch iff u < clip(alpha + beta * (H_t - H_init), 0, 1), Z-1 = 1 copy each, while budget remains.
    stream = [(0.9, 0.2), (0.1, 0.6), (0.5, 0.5), (0.3, 0.1), (0.0, 0.9), (0.8, 0.1)] * 3
    for seed in range(20):
        tree = _tree(seed)
        assert tree.start() == 8
        got = [tree.after_tool(h, h0) for h, h0 in stream]
        rng, used, expected = random.Random(seed), 8, []
        for h, h0 in stream:
            if used >= 16:
                expected.append(0)
                continue
            hit = rng.random() < min(1.0, max(0.0, 0.5 + 0.2 * (h - h0)))
            expected.append(int(hit))
            used += hit
        assert got == expected
        assert tree.branches == sum(expected) and tree.used == 8 + sum(expected) <= 16
        assert tree.deltas == pytest.approx([h - h0 for h, h0 in stream])


def test_branch_rate_converges_to_the_probability():
    tree = _tree(0, budget=10**6, initial=1)
    hits = sum(tree.after_tool(0.6, 0.1) for _ in range(20_000))  # p = 0.5 + 0.2 * 0.5 = 0.6
    assert abs(hits / 20_000 - 0.6) < 0.015


def test_deterministic_extremes_and_beam():
    always = _tree(1, budget=10, initial=4, beam=3, alpha=1.0, beta=0.0)
    always.start()
    assert [always.after_tool(0.0, 0.0) for _ in range(5)] == [2, 2, 2, 0, 0]  # Z-1 = 2 copies, budget 10
    assert always.used == 10 and always.fill() == 0
    never = _tree(1, budget=10, initial=4, alpha=0.0, beta=0.0)
    never.start()
    assert [never.after_tool(0.9, 0.0) for _ in range(5)] == [0] * 5
    assert never.fill() == 6 and never.used == 10  # filled with fresh rollouts only


def test_budget_never_exceeded_and_always_filled():
    """Random trees: M never exceeded at any point, exactly M once filled."""
    for seed in range(300):
        rng = random.Random(seed)
        budget = rng.randint(1, 20)
        tree = _tree(seed, budget=budget, initial=rng.randint(1, budget), beam=rng.randint(2, 4),
                     alpha=rng.random(), beta=rng.random())  # fmt: skip
        open_ = tree.start()
        while open_:
            open_ -= 1  # one trajectory makes some tool calls, then ends
            for _ in range(rng.randint(0, 3)):
                open_ += tree.after_tool(rng.random(), rng.random())
                assert tree.used <= budget
        tree.fill()
        assert tree.used == budget


def test_baseline_is_each_trajectory_own_first_segment():
    # The same after-tool entropy gives different deltas against two prompts' baselines:
    # nothing of prompt A's H_init leaks into prompt B (the public code kept the first prompt's).
    a, b = _tree(0), _tree(0)
    a.after_tool(0.5, 0.1)
    b.after_tool(0.5, 0.7)
    assert a.deltas == pytest.approx([0.4]) and b.deltas == pytest.approx([-0.2])


def test_normalized_entropy():
    # two steps, top-2 log-probs each: -sum p log p = ln 2 (uniform over 2), then 0 (certain)
    steps = [[math.log(0.5), math.log(0.5)], [0.0]]
    assert normalized_entropy(steps, tokens=20, vocab_size=4) == pytest.approx(math.log(2) / 2 / math.log(4))
    assert normalized_entropy(steps, tokens=1, vocab_size=4) == pytest.approx(0.5)
    assert normalized_entropy([], tokens=20, vocab_size=4) == 0.0


def test_soft_and_hard_attribution_on_a_hand_built_tree():
    """Tree of one prompt (segment lengths in brackets):

        root: s0[2] s1[1] s2[2]                 reward 1
        fork of root at 2 segments: s0 s1 s3[1] reward 0
        fresh: s4[3]                            reward 0

    GRPO (mean 1/3, unbiased std sqrt(1/3)): A = [(1-1/3)/0.57735, -(1/3)/0.57735, same] = [1.1547, -0.5774, -0.5774].
    """
    rewards = torch.tensor([1.0, 0.0, 0.0])
    adv = compute_advantages("grpo", rewards, torch.tensor([0, 0, 0]))
    torch.testing.assert_close(adv, torch.tensor([1.1547, -0.5774, -0.5774]), atol=1e-4, rtol=0)
    keys = [[("s0", 2), ("s1", 1), ("s2", 2)], [("s0", 2), ("s1", 1), ("s3", 1)], [("s4", 3)]]
    # soft: every copy keeps its own trajectory's advantage (plain GRPO), all tokens trained
    # hard: s0, s1 (shared by root and fork) get (1.1547 - 0.5774) / 2 = 0.2887, trained in the root only
    per_token, keep = hard_attribution(keys, adv, response_len=5)
    m = (1.1547 - 0.5774) / 2
    expected = torch.tensor([
        [m, m, m, 1.1547, 1.1547],
        [m, m, m, -0.5774, 0.0],
        [-0.5774, -0.5774, -0.5774, 0.0, 0.0],
    ])  # fmt: skip
    torch.testing.assert_close(per_token, expected, atol=1e-4, rtol=0)
    assert keep.tolist() == [[1, 1, 1, 1, 1], [0, 0, 0, 1, 0], [1, 1, 1, 0, 0]]
    # each distinct token trained once: 5 + 1 + 3 = 9 kept tokens of 12 held
    assert int(keep.sum()) == 9


def test_arpo_recipe_and_config_errors():
    from rlkit.config import ConfigError, load_config

    cfg = load_config("examples/recipes/arpo.yaml")
    a = cfg.rollout.arpo
    assert (a.budget, a.initial, a.beam, a.alpha, a.beta, a.entropy_tokens, a.top_logprobs) == (16, 8, 2, 0.5, 0.2, 20, 10)
    assert (cfg.rollout.group_size, cfg.env.name, cfg.env.max_turns, cfg.trainer.num_mini_batches) == (16, "tools", 4, 8)
    cases = {
        "rollout.group_size=8": "rollout.group_size (8) must equal rollout.arpo.budget (16)",
        "rollout.arpo.initial=20": "initial (20) must be <= budget (16)",
        "env.params.tool=[python]": "env.params: 'tool': environment 'tools' takes no such parameter; accepted: tools,",
        "env.name=nope": "env.name: unknown environment 'nope'; registered:",
    }
    for override, message in cases.items():
        with pytest.raises(ConfigError, match=re.escape(message)):
            load_config("examples/recipes/arpo.yaml", overrides=[override])
    with pytest.raises(ConfigError, match="rollout.arpo needs an env: section"):
        load_config(None, overrides=["reward.name=arithmetic", "rollout.arpo.budget=4", "rollout.arpo.initial=2"])
    with pytest.raises(ConfigError, match="algorithm.attribution=hard needs rollout.arpo"):
        load_config(None, overrides=["reward.name=arithmetic", "algorithm.attribution=hard"])
