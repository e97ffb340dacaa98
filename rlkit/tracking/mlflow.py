"""MLflow: a local file store at ``<output_dir>/mlruns`` by default, or ``log.mlflow.tracking_uri``.

``pip install 'rlkit[mlflow]'``. Metric names keep their ``/``; samples go to the run's
artifacts as an MLflow table ``samples/step_<N>.json`` (``mlflow.load_table`` reads it).
"""

from __future__ import annotations

import os
import time

from rlkit.tracking.base import RunInfo, Tracker, register_tracker


@register_tracker("mlflow")
class MlflowTracker(Tracker):
    def __init__(self, run: RunInfo) -> None:
        cfg = run.config.log.mlflow
        self.uri = cfg.tracking_uri or (run.run_dir.parent / "mlruns").resolve().as_uri()
        if self.uri.startswith("file:"):
            # MLflow 3 refuses its file store unless asked for explicitly; a local file
            # store is the default here because it needs no server or database.
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=self.uri)
        experiment = self.client.get_experiment_by_name(cfg.experiment)
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(cfg.experiment)
        tags = {"rlkit.run_dir": str(run.run_dir), **cfg.tags}
        self.run_id = self.client.create_run(experiment_id, run_name=cfg.run_name or run.config.name, tags=tags).info.run_id
        flat = _flatten(run.config.model_dump(mode="json"))
        from mlflow.entities import Param

        self.client.log_batch(self.run_id, params=[Param(k, str(v)[:6000]) for k, v in flat.items()])

    def log_metrics(self, step: int, metrics: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        values = [Metric(k, float(v), now, step) for k, v in sorted(metrics.items()) if isinstance(v, (int, float))]
        for start in range(0, len(values), 1000):  # MLflow's per-batch metric limit
            self.client.log_batch(self.run_id, metrics=values[start : start + 1000])

    def log_samples(self, step: int, samples: list[dict]) -> None:
        if samples:
            columns = list(samples[0])
            data = {c: [s.get(c) for s in samples] for c in columns}
            self.client.log_table(self.run_id, data=data, artifact_file=f"samples/step_{step}.json")

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


def _flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out
