"""Validation during training: every ``eval.every`` steps, held-out prompts through the run's engines.

Logged with the step's metrics (and passed to callbacks' ``on_eval``):

- ``eval/mean@k``: mean reward over the ``eval.samples`` (n) samples of every prompt;
- ``eval/pass@k``: the unbiased pass@k estimator of Chen et al. 2021 (arXiv 2107.03374, eq. 1),
  ``pass@k = mean over prompts of 1 - C(n - c, k) / C(n, k)``, with c the prompt's samples scoring at
  least ``eval.success`` and k = ``eval.pass_k`` (default n);
- ``eval/greedy``: mean reward of one greedy (temperature 0) answer per prompt (``eval.greedy``);
- ``eval/length_mean``: mean sampled response length in tokens (multi-turn: the whole trajectory,
  observations included); ``time/eval_s``;
- with an ``env:`` section, each sample is a whole episode (tools, feedback, the environment's own
  final reward), and ``eval/turns_mean``, ``eval/tool_calls_per_sample`` are logged too.

Each prompt samples with a seed fixed for the run (``sampling_seed(seed, -1, row)``), so successive
evaluations differ only by the weights.
"""

from __future__ import annotations

import statistics
import time
from typing import TYPE_CHECKING

from rlkit.rollout.multiturn import with_env_rewards
from rlkit.rollout.types import SamplingConfig, sampling_seed

if TYPE_CHECKING:
    from rlkit.trainer import Trainer

EVAL_SEED_STEP = -1  # the ``step`` of eval sampling seeds: never a training step


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct (Chen et al. 2021, eq. 1):
    ``1 - C(n-c, k) / C(n, k)``, computed as ``1 - prod_{i=n-c+1}^{n} (1 - k / i)``."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    product = 1.0
    for i in range(n - c + 1, n + 1):
        product *= 1.0 - k / i
    return 1.0 - product


def eval_metrics(
    *, sampled_scores: list[list[float]], sampled_lengths: list[int], greedy_scores: list[float] | None,
    success: float, k: int,
) -> dict[str, float]:
    """The ``eval/*`` metrics from each prompt's sampled scores (one list per prompt) and greedy scores."""
    n = len(sampled_scores[0])
    metrics = {
        "eval/mean@k": statistics.fmean(s for scores in sampled_scores for s in scores),
        "eval/pass@k": statistics.fmean(pass_at_k(n, sum(s >= success for s in scores), k) for scores in sampled_scores),
        "eval/length_mean": statistics.fmean(sampled_lengths),
    }
    if greedy_scores is not None:
        metrics["eval/greedy"] = statistics.fmean(greedy_scores)
    return metrics


def run_validation(trainer: "Trainer") -> dict[str, float]:
    """Generate and score the eval prompts on the trainer's engines with its reward; returns the metrics.

    With an ``env:`` section every eval sample is a whole episode (tools, feedback, the env's own
    final reward), as in training but never ARPO-branched; ``eval/turns_mean`` and
    ``eval/tool_calls_per_sample`` are logged beside the scores."""
    cfg, r = trainer.config.eval, trainer.config.rollout
    started = time.perf_counter()
    rows = trainer.eval_rows
    prompts = [trainer.renderer.token_ids(row) for row in rows]
    sampled, episode = _generate(trainer, rows, prompts, SamplingConfig(
        n=cfg.samples, temperature=cfg.temperature or r.temperature, top_p=r.top_p, top_k=r.top_k,
        max_new_tokens=r.max_new_tokens, stop=tuple(r.stop),
        seeds=tuple(sampling_seed(trainer.config.seed, EVAL_SEED_STEP, i) for i in range(len(rows))),
    ))  # fmt: skip
    scores = score_completions(trainer.reward, rows, sampled)
    per_prompt: list[list[float]] = [[] for _ in rows]
    for c, score in zip(sampled, scores):
        per_prompt[c.prompt_index].append(score)
    greedy_scores = None
    if cfg.greedy:
        greedy, _ = _generate(trainer, rows, prompts, SamplingConfig(
            n=1, temperature=0.0, max_new_tokens=r.max_new_tokens, stop=tuple(r.stop)))
        greedy_scores = score_completions(trainer.reward, rows, greedy)
    metrics = eval_metrics(
        sampled_scores=per_prompt, sampled_lengths=[len(c.token_ids) for c in sampled], greedy_scores=greedy_scores,
        success=cfg.success, k=cfg.pass_k or cfg.samples,
    )
    metrics.update(episode_metrics(episode))
    metrics["time/eval_s"] = time.perf_counter() - started
    return metrics


def episode_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """``eval/turns_mean`` and ``eval/tool_calls_per_sample`` from a multi-turn run's metrics (none single-turn)."""
    names = {"turns/mean": "eval/turns_mean", "tool/calls_per_sample": "eval/tool_calls_per_sample"}
    return {names[k]: v for k, v in metrics.items() if k in names}


def _generate(trainer: "Trainer", rows: list[dict], prompts: list[list[int]], sampling: SamplingConfig):
    """Single-turn samples from the engines, or whole episodes when the run has an environment."""
    if trainer.agent is not None:
        return trainer.agent.evaluate(rows, prompts, sampling)
    return trainer.engine_pool.generate(prompts, sampling), {}


def score_completions(reward, rows: list[dict], completions: list) -> list[float]:
    """``reward``'s scores of ``completions`` (``prompt_index`` indexes ``rows``), an env's own final reward replacing them."""
    scored = reward([c.text for c in completions], [rows[c.prompt_index] for c in completions]).scores
    return with_env_rewards(scored, completions)
