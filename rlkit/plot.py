"""``rlkit plot runs/a [runs/b ...] --out plots/ [--smooth N]``: training curves as PNGs.

One PNG per group of metrics (reward and each reward component, response length, entropy,
clip fractions, KL, log-prob diff, eval metrics, step time split into generate / reward /
train / sync), one panel per metric, every run overlaid in its own colour with a legend.
Each curve is a trailing moving average over ``smooth`` steps with the raw values faint
behind it. ``overview.png`` puts the headline metrics on one page.
Needs matplotlib (``pip install 'rlkit[plot]'``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rlkit.tracking.jsonl import METRICS_FILE, read_metrics


@dataclass(frozen=True)
class Panel:
    """A figure: the metrics ``select`` picks (in order) from the union of the runs' keys."""

    file: str
    title: str
    select: Callable[[list[str]], list[str]]


def _matching(pattern: str, *, exclude: str | None = None) -> Callable[[list[str]], list[str]]:
    rx, ex = re.compile(pattern), re.compile(exclude) if exclude else None
    return lambda keys: [k for k in keys if rx.search(k) and not (ex and ex.search(k))]


def _exact(*names: str) -> Callable[[list[str]], list[str]]:
    return lambda keys: [n for n in names if n in keys]


def _reward_keys(keys: list[str]) -> list[str]:
    components = sorted(k for k in keys if re.fullmatch(r"reward/[^/]+/mean", k))
    return _exact("reward/mean", "reward/task_mean", "reward/std")(keys) + components


PANELS: list[Panel] = [
    Panel("reward.png", "Reward (mean of the step's samples) and each reward component", _reward_keys),
    Panel("length.png", "Response length (tokens)", _exact("response/length_mean", "response/length_max", "response/truncated_frac")),
    Panel("entropy.png", "Entropy of the policy (nats/token)", _matching(r"entropy")),
    Panel("clip.png", "Clip fractions (share of tokens)", _matching(r"clip_frac|erc.*frac|masked_frac")),
    Panel("kl.png", "KL", _matching(r"(^|/|_)kl($|/|_)|approx_kl|mismatch_kl")),
    Panel("logprob_diff.png", "|vLLM - learner| log-prob per token", _exact("rollout/logprob_diff")),
    Panel("eval.png", "Validation during training", _matching(r"^eval/")),
    Panel("time.png", "Step time split (s)",
          _exact("time/step_s", "time/generate_s", "time/reward_s", "time/train_s", "time/sync_s", "time/eval_s")),
]
OVERVIEW = ["reward/mean", "response/length_mean", "actor/entropy", "actor/clip_frac", "rollout/logprob_diff",
            "eval/mean@k", "eval/pass@k", "eval/greedy", "time/step_s"]
TIME_PARTS = ["time/generate_s", "time/reward_s", "time/train_s", "time/sync_s"]
"""Stacked per run in ``time_split.png``: where each step's seconds went."""


@dataclass
class Run:
    label: str
    records: list[dict]

    def series(self, key: str) -> tuple[list[int], list[float]]:
        points = [(r["step"], float(r[key])) for r in self.records if isinstance(r.get(key), (int, float))]
        return [s for s, _ in points], [v for _, v in points]


def load_runs(paths: Sequence[str | Path]) -> list[Run]:
    """Each run directory's metrics.jsonl (a path to the file itself works too), labelled by folder name."""
    runs = []
    for raw in paths:
        path = Path(raw)
        file = path if path.is_file() else path / METRICS_FILE
        if not file.is_file():
            raise FileNotFoundError(f"{raw}: no {METRICS_FILE} (give run directories, e.g. runs/<name>)")
        runs.append(Run(label=file.parent.name, records=read_metrics(file)))
    labels = [r.label for r in runs]
    for run, raw in zip(runs, paths):
        if labels.count(run.label) > 1:
            run.label = str(Path(raw))
    return runs


def moving_average(steps: Sequence[int], values: Sequence[float], window: int) -> list[float]:
    """Trailing moving average over steps: point i is the mean of the values logged at steps
    ``steps[i] - window + 1 .. steps[i]`` (so a metric logged every 4 steps averages fewer points)."""
    out, start, total = [], 0, 0.0
    for i, (step, value) in enumerate(zip(steps, values)):
        total += value
        while steps[start] <= step - window:
            total -= values[start]
            start += 1
        out.append(total / (i - start + 1))
    return out


def plot_runs(paths: Sequence[str | Path], *, out: str | Path = "plots", smooth: int = 5) -> list[Path]:
    """Write the PNGs for ``paths`` into ``out``; returns the files written (panels with no data are skipped)."""
    import matplotlib

    matplotlib.use("Agg")
    window = max(1, smooth)
    runs = load_runs(paths)
    keys = sorted({k for run in runs for r in run.records for k, v in r.items() if k != "step" and isinstance(v, (int, float))})
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for panel in PANELS:
        chosen = panel.select(keys)
        if chosen:
            written.append(_figure(runs, chosen, title=panel.title, path=out / panel.file, window=window))
    parts = [k for k in TIME_PARTS if k in keys]
    if parts:
        written.append(_time_split(runs, parts, path=out / "time_split.png", window=window))
    headline = [k for k in OVERVIEW if k in keys]
    if headline:
        written.append(_figure(runs, headline, title="Overview", path=out / "overview.png", window=window))
    return written


def _time_split(runs: list[Run], parts: list[str], *, path: Path, window: int) -> Path:
    """One panel per run: the step time stacked by part (generate, reward, train, sync), smoothed."""
    import matplotlib.pyplot as plt

    cols = min(3, len(runs))
    rows = (len(runs) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.4 * rows), squeeze=False)
    for ax, run in zip(axes.flat, runs):
        by_step = {r["step"]: r for r in run.records if all(isinstance(r.get(k), (int, float)) for k in parts)}
        steps = sorted(by_step)
        stacks = [moving_average(steps, [float(by_step[s][k]) for s in steps], window) for k in parts]
        if steps:
            ax.stackplot(steps, stacks, labels=[k.removeprefix("time/").removesuffix("_s") for k in parts], alpha=0.8)
        ax.set_title(run.label, fontsize=10)
        _step_axis(ax, [run])
        ax.set_ylabel("seconds per step", fontsize=9)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
    for ax in list(axes.flat)[len(runs):]:
        ax.set_visible(False)
    suffix = f" (moving average over {window} steps)" if window > 1 else ""
    fig.suptitle("Where each step's time went" + suffix, fontsize=12)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels) or 1, fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 0.93))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _step_axis(ax, runs: list[Run]) -> None:
    """Whole-number step ticks over the runs' full step range (panels line up; a metric logged
    only every N steps, such as eval, is not stretched over its own few points)."""
    from matplotlib.ticker import MaxNLocator

    steps = [r["step"] for run in runs for r in run.records if isinstance(r.get("step"), int)]
    if steps and max(steps) > min(steps):
        pad = (max(steps) - min(steps)) * 0.02
        ax.set_xlim(min(steps) - pad, max(steps) + pad)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("step", fontsize=9)


def _figure(runs: list[Run], keys: list[str], *, title: str, path: Path, window: int) -> Path:
    import matplotlib.pyplot as plt

    cols = min(3, len(keys))
    rows = (len(keys) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.4 * rows), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, key in zip(axes.flat, keys):
        for i, run in enumerate(runs):
            steps, values = run.series(key)
            if not steps:
                continue
            color = colors[i % len(colors)]
            if window > 1 and len(values) > 1:
                ax.plot(steps, values, color=color, alpha=0.25, linewidth=1)
                ax.plot(steps, moving_average(steps, values, window), color=color, linewidth=2, label=run.label)
            else:
                ax.plot(steps, values, color=color, linewidth=2, marker="o" if len(values) < 30 else None,
                        markersize=3, label=run.label)
        ax.set_title(key, fontsize=10)
        _step_axis(ax, runs)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
    for ax in list(axes.flat)[len(keys):]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if not handles:
        for ax in axes.flat:
            handles, labels = ax.get_legend_handles_labels()
            if handles:
                break
    suffix = f" (moving average over {window} steps, raw faint)" if window > 1 else ""
    fig.suptitle(title + suffix, fontsize=12)
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0.06 if handles else 0, 1, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
