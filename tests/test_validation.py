"""Validation metrics: the unbiased pass@k estimator (golden numbers) and the eval config checks."""

from __future__ import annotations

import itertools
import math

import pytest

from rlkit.config import ConfigError, load_config
from rlkit.validation import eval_metrics, pass_at_k

DEMO = "examples/arithmetic_grpo.yaml"


def test_pass_at_k_golden_numbers():
    # n=5, c=2, k=2: 1 - C(3,2)/C(5,2) = 1 - 3/10
    assert pass_at_k(5, 2, 2) == pytest.approx(0.7, abs=1e-12)
    # n=10, c=3, k=5: 1 - C(7,5)/C(10,5) = 1 - 21/252
    assert pass_at_k(10, 3, 5) == pytest.approx(1 - 21 / 252, abs=1e-12)
    # k=1 is the plain success rate c/n
    assert pass_at_k(8, 3, 1) == pytest.approx(3 / 8, abs=1e-12)
    assert pass_at_k(4, 0, 4) == 0.0  # nothing correct
    assert pass_at_k(4, 1, 4) == 1.0  # n - c < k: every k-subset holds a correct one
    with pytest.raises(ValueError, match="n=3, c=1, k=4"):
        pass_at_k(3, 1, 4)


@pytest.mark.parametrize("n,c,k", [(6, 2, 3), (7, 4, 2), (9, 1, 4)])
def test_pass_at_k_equals_the_share_of_k_subsets_with_a_pass(n, c, k):
    """The estimator is exactly the fraction of the C(n, k) size-k subsets that contain a correct sample."""
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(samples, k))
    assert len(subsets) == math.comb(n, k)
    assert pass_at_k(n, c, k) == pytest.approx(sum(any(s) for s in subsets) / len(subsets), abs=1e-12)


def test_eval_metrics_from_scores():
    # prompt A: 2 of 4 pass; prompt B: 0 of 4 (one partial 0.5 score is not a pass at success=1.0)
    metrics = eval_metrics(
        sampled_scores=[[1.0, 0.0, 1.0, 0.0], [0.0, 0.5, 0.0, 0.0]], sampled_lengths=[10, 20, 30, 40, 5, 5, 5, 5],
        greedy_scores=[1.0, 0.0], success=1.0, k=2,
    )
    assert metrics == {
        "eval/mean@k": pytest.approx(2.5 / 8),
        "eval/pass@k": pytest.approx((1 - math.comb(2, 2) / math.comb(4, 2) + 0.0) / 2),  # (1 - 1/6) / 2
        "eval/length_mean": 15.0,
        "eval/greedy": 0.5,
    }
    assert "eval/greedy" not in eval_metrics(sampled_scores=[[1.0]], sampled_lengths=[3], greedy_scores=None,
                                             success=1.0, k=1)


def test_eval_config_checks():
    with pytest.raises(ConfigError, match=r"eval.split='train' is the training split of builtin:arithmetic"):
        load_config(DEMO, overrides=["eval.every=5", "eval.split=train"])
    with pytest.raises(ConfigError, match=r"eval: pass_k=8 exceeds samples=4"):
        load_config(DEMO, overrides=["eval.pass_k=8"])
    cfg = load_config(DEMO, overrides=["eval.every=5"])
    assert (cfg.eval.split_for(cfg.data), cfg.eval.samples, cfg.eval.greedy) == ("test", 4, True)
    # another source is read whole by default (a single file has no splits), and may reuse the split name
    other = load_config(DEMO, overrides=["eval.every=5", "eval.source=held_out.jsonl"])
    assert other.eval.split_for(other.data) == "train"
    assert load_config(DEMO, overrides=["eval.every=5", "eval.split=train", "eval.source=held_out.jsonl"]).eval.every == 5
