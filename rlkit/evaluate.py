"""``rlkit eval``: sampled and greedy accuracy of a model on a config's data and reward.

Used to pick a task the untrained model can learn (sampled accuracy roughly
0.1-0.5 gives GRPO groups reward variance) and to check a checkpoint.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from rlkit.config import ExperimentConfig
from rlkit.data import PromptRenderer, load_rows
from rlkit.models import resolve_model_path
from rlkit.rewards import build_reward
from rlkit.rollout.types import SamplingConfig
from rlkit.runtime import init_ray, setup_logging, start_engines


@dataclass
class EvalResult:
    prompts: int
    samples_per_prompt: int
    sampled_mean: float  # mean reward over all samples at the config's temperature
    greedy_mean: float  # mean reward of one greedy (temperature 0) answer per prompt
    mixed_group_frac: float  # prompts whose samples got different rewards (where GRPO learns)
    mean_tokens: float
    truncated_frac: float
    seconds: float

    def __str__(self) -> str:
        return (
            f"{self.prompts} prompts x {self.samples_per_prompt} samples: sampled {self.sampled_mean:.3f}, "
            f"greedy {self.greedy_mean:.3f}, mixed groups {self.mixed_group_frac:.2f}, "
            f"mean tokens {self.mean_tokens:.1f}, truncated {self.truncated_frac:.2f} ({self.seconds:.0f} s)"
        )


def evaluate(cfg: ExperimentConfig, *, num_prompts: int, samples: int, offset: int = 0) -> EvalResult:
    """Score ``samples`` sampled completions and one greedy completion for ``num_prompts`` rows."""
    from transformers import AutoTokenizer

    setup_logging()
    started = time.perf_counter()
    model_path = str(resolve_model_path(cfg.model.path))
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    rows = load_rows(cfg.data.source, split=cfg.data.split, prompt_field=cfg.data.prompt_field,
                     required_fields=cfg.data.required_fields, builtin_params=cfg.data.builtin)[offset : offset + num_prompts]
    renderer = PromptRenderer(tokenizer, cfg.data)
    prompts = [renderer.token_ids(r) for r in rows]
    init_ray(cfg)
    pool = start_engines(cfg.model_copy(update={"rollout": cfg.rollout.model_copy(update={"num_engines": 1})}), model_path)
    r = cfg.rollout
    sampled = pool.generate(prompts, SamplingConfig(
        n=samples, temperature=r.temperature, top_p=r.top_p, top_k=r.top_k, max_new_tokens=r.max_new_tokens, stop=tuple(r.stop)))
    greedy = pool.generate(prompts, SamplingConfig(
        n=1, temperature=0.0, max_new_tokens=r.max_new_tokens, stop=tuple(r.stop)))
    with build_reward(cfg.reward) as reward:
        s_scores = reward([c.text for c in sampled], [rows[c.prompt_index] for c in sampled]).scores
        g_scores = reward([c.text for c in greedy], [rows[c.prompt_index] for c in greedy]).scores
    pool.close()
    groups = [s_scores[i * samples : (i + 1) * samples] for i in range(len(rows))]
    return EvalResult(
        prompts=len(rows), samples_per_prompt=samples,
        sampled_mean=statistics.fmean(s_scores), greedy_mean=statistics.fmean(g_scores),
        mixed_group_frac=sum(len(set(g)) > 1 for g in groups) / len(groups),
        mean_tokens=statistics.fmean(len(c.token_ids) for c in sampled),
        truncated_frac=sum(c.truncated for c in sampled) / len(sampled),
        seconds=time.perf_counter() - started,
    )
