"""``runs/<name>/metrics.jsonl`` (one object per step), ``samples.jsonl``, and the console progress line."""

from __future__ import annotations

import json
import time
from pathlib import Path

from rlkit.tracking.base import RunInfo, Tracker, plain, register_tracker

METRICS_FILE = "metrics.jsonl"
SAMPLES_FILE = "samples.jsonl"


class MetricsLog:
    """``metrics.jsonl`` plus a console line per step with reward, length, tokens/s and ETA."""

    def __init__(self, run_dir: Path, *, total_steps: int, start_step: int = 1) -> None:
        self.path = Path(run_dir) / METRICS_FILE
        self.total_steps, self.start_step = total_steps, start_step
        self.started = time.perf_counter()

    def write(self, step: int, metrics: dict[str, float]) -> None:
        record = {"step": step, **{k: plain(v) for k, v in sorted(metrics.items())}}
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        done = max(step - self.start_step + 1, 1)
        elapsed = time.perf_counter() - self.started
        eta = elapsed / done * (self.total_steps - step)
        print(
            f"step {step}/{self.total_steps} | reward {metrics.get('reward/mean', float('nan')):.3f}"
            f" | len {metrics.get('response/length_mean', float('nan')):.1f}"
            f" | {metrics.get('throughput/tokens_per_s', 0):.0f} tok/s"
            f" | {metrics.get('time/step_s', 0):.1f} s/step | ETA {duration(eta)}",
            flush=True,
        )


@register_tracker("jsonl")
class JsonlTracker(Tracker):
    """The run directory's own record: what ``rlkit plot`` and ``trainer.resume: auto`` read."""

    def __init__(self, run: RunInfo) -> None:
        self.metrics = MetricsLog(run.run_dir, total_steps=run.total_steps, start_step=run.start_step)
        self.samples_path = run.run_dir / SAMPLES_FILE

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        self.metrics.write(step, metrics)

    def log_samples(self, step: int, samples: list[dict]) -> None:
        with self.samples_path.open("a") as f:
            for sample in samples:
                f.write(json.dumps({"step": step, **{k: plain(v) for k, v in sample.items()}}) + "\n")


def truncate_after(run_dir: Path, step: int) -> int:
    """Drop records of steps after ``step`` from metrics.jsonl and samples.jsonl (a resumed run redoes
    them); returns how many metric records were dropped."""
    dropped = 0
    for name in (METRICS_FILE, SAMPLES_FILE):
        path = Path(run_dir) / name
        if not path.is_file():
            continue
        kept, lines = [], path.read_text().splitlines()
        for line in lines:
            try:
                record_step = json.loads(line)["step"]
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a line cut short by a kill
            if record_step <= step:
                kept.append(line)
        if name == METRICS_FILE:
            dropped = len(lines) - len(kept)
        path.write_text("".join(line + "\n" for line in kept))
    return dropped


def read_metrics(path: Path) -> list[dict]:
    """The records of a metrics.jsonl (a last line cut short by a kill is skipped)."""
    records = []
    for line in Path(path).read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"
