"""Weights & Biases, offline by default: ``<run_dir>/wandb/offline-run-*``, uploaded later by ``wandb sync``.

``pip install 'rlkit[wandb]'``. Settings: ``log.wandb.{project, entity, name, tags, mode}``;
samples go to a ``wandb.Table`` named ``samples``. A resumed run continues the same W&B run id.
"""

from __future__ import annotations

from rlkit.tracking.base import RunInfo, Tracker, register_tracker

RUN_ID_FILE = "rlkit-run-id"
"""``<run_dir>/wandb/rlkit-run-id``: a resumed run (``trainer.resume``) logs into the same W&B run."""


@register_tracker("wandb")
class WandbTracker(Tracker):
    def __init__(self, run: RunInfo) -> None:
        import wandb

        cfg = run.config.log.wandb
        self.wandb = wandb
        id_file = run.run_dir / "wandb" / RUN_ID_FILE
        resumed = run.start_step > 1 and id_file.is_file()
        self.run = wandb.init(
            project=cfg.project, entity=cfg.entity, name=cfg.name or run.config.name, tags=list(cfg.tags),
            mode=cfg.mode, dir=str(run.run_dir), config=run.config.model_dump(mode="json"), reinit="create_new",
            **({"id": id_file.read_text().strip(), "resume": "allow"} if resumed else {}),
        )
        id_file.parent.mkdir(parents=True, exist_ok=True)
        id_file.write_text(self.run.id)

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        self.run.log({k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}, step=step)

    def log_samples(self, step: int, samples: list[dict]) -> None:
        if samples:
            columns = list(samples[0])
            table = self.wandb.Table(columns=columns, data=[[s.get(c) for c in columns] for s in samples])
            self.run.log({"samples": table}, step=step)

    def close(self) -> None:
        self.run.finish()
        self.wandb.teardown()  # waits for wandb-core to flush and close the run file
