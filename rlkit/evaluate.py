"""``rlkit eval``: sampled and greedy accuracy of a model on a config's data and reward.

Used to pick a task the untrained model can learn (sampled accuracy roughly
0.1-0.5 gives GRPO groups reward variance) and to check a checkpoint on held-out
prompts (``--split test``: for ``builtin:arithmetic`` no test problem is in train). With an
``env:`` section each sample is a whole episode: tools, feedback, the environment's own reward.
Sampling is seeded per prompt (``sampling_seed(seed, 0, row)``), so a rerun of the
same model on the same rows gives the same numbers.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from rlkit.config import ExperimentConfig
from rlkit.data import PromptRenderer, load_prompt_rows
from rlkit.models import resolve_model_path
from rlkit.rewards import build_reward
from rlkit.rollout.multiturn import AgentRollouts
from rlkit.rollout.types import SamplingConfig, sampling_seed
from rlkit.runtime import init_ray, setup_logging, start_engines
from rlkit.validation import score_completions


@dataclass
class EvalResult:
    model: str
    split: str
    offset: int
    prompts: int
    samples_per_prompt: int
    sampled_mean: float  # mean reward over all samples at the config's temperature
    greedy_mean: float  # mean reward of one greedy (temperature 0) answer per prompt
    mixed_group_frac: float  # prompts whose samples got different rewards (where GRPO learns)
    mean_tokens: float
    truncated_frac: float
    seconds: float
    turns_mean: float | None = None  # multi-turn (env:) only: turns per episode
    tool_calls_per_sample: float | None = None  # multi-turn only

    def __str__(self) -> str:
        return (
            f"split {self.split!r} rows {self.offset}-{self.offset + self.prompts - 1}: "
            f"{self.prompts} prompts x {self.samples_per_prompt} samples: sampled {self.sampled_mean:.3f}, "
            f"greedy {self.greedy_mean:.3f}, mixed groups {self.mixed_group_frac:.2f}, "
            f"mean tokens {self.mean_tokens:.1f}, truncated {self.truncated_frac:.2f}"
            + (f", turns {self.turns_mean:.2f}, tool calls {self.tool_calls_per_sample:.2f}" if self.turns_mean is not None else "")
            + f" ({self.seconds:.0f} s)"
        )

    def write_json(self, path: str | Path) -> Path:
        """This result as one JSON object (``rlkit eval --out``); the multi-turn fields only with an env."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fields = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        path.write_text(json.dumps(fields, indent=2) + "\n")
        return path


def evaluate(
    cfg: ExperimentConfig, *, num_prompts: int, samples: int, offset: int = 0, split: str | None = None
) -> EvalResult:
    """Score ``samples`` sampled completions and one greedy completion for ``num_prompts`` rows of
    ``split`` (default ``data.split``) from row ``offset`` on."""
    from transformers import AutoTokenizer

    setup_logging()
    started = time.perf_counter()
    split = split or cfg.data.split
    model_path = str(resolve_model_path(cfg.model.path))
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    renderer = PromptRenderer(tokenizer, cfg.data)
    rows = load_prompt_rows(cfg.data, renderer, split=split)[offset : offset + num_prompts]
    if not rows:
        raise ValueError(f"rlkit eval: split {split!r} of {cfg.data.source} has no rows from offset {offset}")
    prompts = [renderer.token_ids(r) for r in rows]
    init_ray(cfg)
    pool = start_engines(cfg.model_copy(update={"rollout": cfg.rollout.model_copy(update={"num_engines": 1})}), model_path)
    r = cfg.rollout
    agent = None  # with env: every sample is a whole episode (tools, feedback, the env's own reward)
    if cfg.env is not None:
        agent = AgentRollouts(cfg, tokenizer=tokenizer, generate=pool.generate, prompt_renderer=renderer)
    generate = (lambda s: agent.evaluate(rows, prompts, s)) if agent else (lambda s: (pool.generate(prompts, s), {}))
    try:
        sampled, episode = generate(SamplingConfig(
            n=samples, temperature=r.temperature, top_p=r.top_p, top_k=r.top_k, max_new_tokens=r.max_new_tokens,
            stop=tuple(r.stop), seeds=tuple(sampling_seed(cfg.seed, 0, offset + i) for i in range(len(rows)))))
        greedy, _ = generate(SamplingConfig(n=1, temperature=0.0, max_new_tokens=r.max_new_tokens, stop=tuple(r.stop)))
    finally:
        if agent is not None:
            agent.close()
        pool.close()
    with build_reward(cfg.reward) as reward:
        s_scores = score_completions(reward, rows, sampled)
        g_scores = score_completions(reward, rows, greedy)
    groups: dict[int, list[float]] = {}
    for c, score in zip(sampled, s_scores):
        groups.setdefault(c.prompt_index, []).append(score)
    return EvalResult(
        model=cfg.model.path, split=split, offset=offset, prompts=len(rows), samples_per_prompt=samples,
        sampled_mean=statistics.fmean(s_scores), greedy_mean=statistics.fmean(g_scores),
        mixed_group_frac=sum(len(set(g)) > 1 for g in groups.values()) / len(groups),
        mean_tokens=statistics.fmean(len(c.token_ids) for c in sampled),
        truncated_frac=sum(c.truncated for c in sampled) / len(sampled),
        seconds=time.perf_counter() - started,
        turns_mean=episode.get("turns/mean"), tool_calls_per_sample=episode.get("tool/calls_per_sample"),
    )
