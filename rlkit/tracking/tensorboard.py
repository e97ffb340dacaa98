"""TensorBoard event files under ``<run_dir>/tensorboard`` (``log.tensorboard.dir``); samples as a text table.

``pip install 'rlkit[tensorboard]'``; view with ``tensorboard --logdir runs/<name>/tensorboard``.
"""

from __future__ import annotations

from pathlib import Path

from rlkit.tracking.base import RunInfo, Tracker, register_tracker


@register_tracker("tensorboard")
class TensorBoardTracker(Tracker):
    def __init__(self, run: RunInfo) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.dir = Path(run.config.log.tensorboard.dir or run.run_dir / "tensorboard")
        self.writer = SummaryWriter(log_dir=str(self.dir), purge_step=run.start_step if run.start_step > 1 else None)

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        for key, value in sorted(metrics.items()):
            if isinstance(value, (int, float)):
                self.writer.add_scalar(key, float(value), global_step=step)
        self.writer.flush()

    def log_samples(self, step: int, samples: list[dict]) -> None:
        if samples:
            self.writer.add_text("samples", markdown_table(samples), global_step=step)
            self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def markdown_table(samples: list[dict]) -> str:
    """Sample records as a Markdown table (TensorBoard's text plugin renders it)."""
    columns = list(samples[0])
    cell = lambda v: (f"{v:.4g}" if isinstance(v, float) else str(v)).replace("|", "\\|").replace("\n", "<br>")  # noqa: E731
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(s.get(c, "")) for c in columns) + " |" for s in samples]
    return "\n".join(lines)
