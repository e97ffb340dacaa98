"""RLEP phase 1: sample answers from a trained checkpoint, keep the verified ones (algorithms.md section 10).

    rlkit collect-pool examples/arithmetic_grpo.yaml --checkpoint runs/x/checkpoints/step_400 \\
        --out runs/x/replay_pool.jsonl --samples 64

For each training prompt: ``samples`` answers at temperature 0.7, top-p 0.95
(the paper's settings, changeable), scored by the config's reward; answers
scoring at least ``success`` are kept, and a prompt gets a pool only with
``min_correct`` (2) or more of them. Prints a progress line per chunk of prompts
and writes the pool as it goes (a run cut short leaves a valid, shorter pool).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from rlkit.config import ExperimentConfig
from rlkit.data import PromptRenderer, load_rows
from rlkit.replay.pool import PooledResponse, PoolWriter
from rlkit.rewards import build_reward
from rlkit.rollout.types import SamplingConfig
from rlkit.runtime import generate_on_engines, init_ray, setup_logging, start_engines

logger = logging.getLogger("rlkit")


@dataclass
class CollectStats:
    prompts: int
    answers: int
    correct: int  # answers scoring >= success
    pooled_prompts: int  # prompts with at least min_correct correct answers
    pooled_answers: int
    seconds: float

    def __str__(self) -> str:
        return (
            f"{self.prompts} prompts, {self.answers} answers, {self.correct} correct; pool: "
            f"{self.pooled_answers} answers for {self.pooled_prompts} prompts ({self.seconds:.0f} s)"
        )


def collect_pool(
    cfg: ExperimentConfig,
    *,
    checkpoint: str,
    out: str,
    samples: int = 64,
    temperature: float = 0.7,
    top_p: float = 0.95,
    min_correct: int = 2,
    success: float = 1.0,
    num_prompts: int | None = None,
    offset: int = 0,
    chunk_prompts: int = 64,
) -> CollectStats:
    """Build a `ReplayPool` from ``checkpoint``'s answers to the config's prompts and write it to ``out``."""
    from transformers import AutoTokenizer

    if samples < 1 or min_correct < 1 or chunk_prompts < 1:
        raise ValueError("samples, min_correct and chunk_prompts must be at least 1")
    setup_logging()
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    d = cfg.data
    rows = load_rows(d.source, split=d.split, prompt_field=d.prompt_field, required_fields=d.required_fields,
                     builtin_params=d.builtin)  # fmt: skip
    rows = rows[offset : offset + num_prompts if num_prompts is not None else None]
    renderer = PromptRenderer(tokenizer, d)
    sampling = SamplingConfig(
        n=samples, temperature=temperature, top_p=top_p, max_new_tokens=cfg.rollout.max_new_tokens,
        stop=tuple(cfg.rollout.stop),
    )  # fmt: skip
    init_ray(cfg)
    engines = start_engines(cfg, checkpoint)
    stats = CollectStats(len(rows), 0, 0, 0, 0, 0.0)
    try:
        with build_reward(cfg.reward) as reward, PoolWriter(out) as pool:
            for first in range(0, len(rows), chunk_prompts):
                chunk = rows[first : first + chunk_prompts]
                prompt_ids = [renderer.token_ids(row) for row in chunk]
                completions = generate_on_engines(engines, prompt_ids, sampling)
                scores = reward([c.text for c in completions], [chunk[c.prompt_index] for c in completions]).scores
                kept: dict[int, list[PooledResponse]] = {}
                for c, score in zip(completions, scores):
                    stats.answers += 1
                    if score >= success:
                        stats.correct += 1
                        kept.setdefault(c.prompt_index, []).append(
                            PooledResponse(token_ids=tuple(c.token_ids), text=c.text, score=float(score),
                                           truncated=c.truncated)  # fmt: skip
                        )
                for index, responses in sorted(kept.items()):
                    if len(responses) >= min_correct:
                        pool.write(prompt_ids[index], responses)
                _progress(first + len(chunk), len(rows), pool, started)
        stats.pooled_prompts, stats.pooled_answers = pool.prompts, pool.responses
    finally:
        engines.close()
    stats.seconds = time.perf_counter() - started
    logger.info("replay pool written to %s: %s", out, stats)
    return stats


def _progress(done: int, total: int, pool: PoolWriter, started: float) -> None:
    elapsed = time.perf_counter() - started
    rate = done / elapsed if elapsed > 0 else 0.0
    eta = (total - done) / rate if rate > 0 else 0.0
    print(
        f"collect-pool {done}/{total} prompts | {rate:.2f} prompts/s | pooled {pool.prompts} prompts, "
        f"{pool.responses} answers | ETA {eta:.0f}s",
        flush=True,
    )
