"""Every tracker backend writes real files that its own reader reads back (no mocks)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from rlkit.config import ConfigError, load_config
from rlkit.tracking import RunInfo, RunLogger

DEMO = "examples/arithmetic_grpo.yaml"
STEPS = {
    1: {"reward/mean": 0.25, "loss": -0.5, "time/step_s": 2.0},
    2: {"reward/mean": 0.5, "loss": 0.125, "time/step_s": 3.0},
    3: {"reward/mean": 0.75, "loss": 1.5, "time/step_s": 4.0},
}
SAMPLES = [
    {"prompt": "What is 2 + 3?", "completion": "2 + 3 = 5\nAnswer: 5", "reward": 1.0, "advantage": 0.866},
    {"prompt": "What is 2 + 3?", "completion": "Answer: 6 | pipes", "reward": 0.0, "advantage": -0.866},
]


def _log_run(tmp_path, backends: list[str], extra: tuple[str, ...] = ()):
    cfg = load_config(DEMO, overrides=[f"output_dir={tmp_path}", "name=tracked", f"log.backends={backends}", *extra])
    run_dir = cfg.run_dir
    run_dir.mkdir(parents=True)
    log = RunLogger(RunInfo(config=cfg, run_dir=run_dir, total_steps=3, start_step=1))
    for step, metrics in STEPS.items():
        log.log_metrics(step, metrics)
        if step == 2:
            log.log_samples(step, SAMPLES)
    log.close()
    return run_dir


def test_jsonl_writes_metrics_and_samples(tmp_path, capsys):
    run_dir = _log_run(tmp_path, ["jsonl"])
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert records == [{"step": s, **m} for s, m in STEPS.items()]
    samples = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert samples == [{"step": 2, **s} for s in SAMPLES]
    assert "step 3/3 | reward 0.750" in capsys.readouterr().out


def test_tensorboard_event_files_read_back(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = _log_run(tmp_path, ["jsonl", "tensorboard"])
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    assert set(events.Tags()["scalars"]) == {"reward/mean", "loss", "time/step_s"}
    for key in ("reward/mean", "loss", "time/step_s"):
        assert [(e.step, e.value) for e in events.Scalars(key)] == [(s, m[key]) for s, m in STEPS.items()]
    (text,) = events.Tensors("samples/text_summary")
    table = text.tensor_proto.string_val[0].decode()
    assert text.step == 2
    assert table.splitlines()[0] == "| prompt | completion | reward | advantage |"
    assert "| What is 2 + 3? | 2 + 3 = 5<br>Answer: 5 | 1 | 0.866 |" in table
    assert "Answer: 6 \\| pipes" in table  # a | inside a cell is escaped, the row keeps 4 columns


def test_tensorboard_dir_is_configurable(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _log_run(tmp_path, ["jsonl", "tensorboard"], (f"log.tensorboard.dir={tmp_path / 'tb'}",))
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert [e.value for e in events.Scalars("loss")] == [-0.5, 0.125, 1.5]


def test_mlflow_file_store_reads_back_with_its_client(tmp_path):
    from mlflow.tracking import MlflowClient

    _log_run(tmp_path, ["jsonl", "mlflow"], ("log.mlflow.tags={team: rl}",))
    store = tmp_path / "mlruns"  # default: a file store beside the run directories
    assert store.is_dir()
    client = MlflowClient(tracking_uri=store.as_uri())
    experiment = client.get_experiment_by_name("rlkit")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "tracked" and run.info.status == "FINISHED"
    assert run.data.tags["team"] == "rl"
    assert run.data.params["learner.lr"] == "1e-05" and run.data.params["trainer.total_steps"] == "30"
    for key in ("reward/mean", "loss"):
        history = client.get_metric_history(run.info.run_id, key)
        assert sorted((m.step, m.value) for m in history) == [(s, m[key]) for s, m in STEPS.items()]
    table = client.download_artifacts(run.info.run_id, "samples/step_2.json", str(tmp_path / "dl"))
    loaded = json.loads(open(table).read())
    assert loaded["columns"] == ["prompt", "completion", "reward", "advantage"]
    assert loaded["data"] == [[s["prompt"], s["completion"], s["reward"], s["advantage"]] for s in SAMPLES]


def test_wandb_offline_run_reads_back(tmp_path):
    from .wandb_records import history, run_record

    run_dir = _log_run(
        tmp_path, ["jsonl", "wandb"], ("log.wandb.project=arith", "log.wandb.tags=[grpo, cpu]", "log.wandb.name=first")
    )
    (offline,) = (run_dir / "wandb").glob("offline-run-*")
    (records,) = offline.glob("run-*.wandb")
    run = run_record(records)
    assert (run.project, run.display_name, list(run.tags)) == ("arith", "first", ["grpo", "cpu"])
    rows = history(records)
    assert [r["_step"] for r in rows] == [1, 2, 3]
    for row, (step, metrics) in zip(rows, STEPS.items()):
        assert {k: row[k] for k in metrics} == metrics
    assert rows[1]["samples/_type"] == "table-file" and rows[1]["samples/nrows"] == 2
    table = json.loads((offline / "files" / rows[1]["samples/path"]).read_text())
    assert table["columns"] == ["prompt", "completion", "reward", "advantage"]
    assert table["data"] == [[s["prompt"], s["completion"], s["reward"], s["advantage"]] for s in SAMPLES]


def test_all_backends_at_once(tmp_path):
    run_dir = _log_run(tmp_path, ["jsonl", "tensorboard", "wandb", "mlflow"])
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 3
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert list((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert list((tmp_path / "mlruns").glob("*/*/metrics/loss"))


def test_backends_must_include_jsonl_and_not_repeat():
    with pytest.raises(ConfigError, match=r"log\.backends: must include jsonl"):
        load_config(DEMO, overrides=["log.backends=[tensorboard]"])
    with pytest.raises(ConfigError, match=r"log\.backends: names tensorboard twice"):
        load_config(DEMO, overrides=["log.backends=[jsonl, tensorboard, tensorboard]"])
    with pytest.raises(ConfigError, match=r"log\.backends\.1: Input should be 'jsonl', 'tensorboard', 'wandb' or 'mlflow'"):
        load_config(DEMO, overrides=["log.backends=[jsonl, neptune]"])


def test_missing_tracker_package_is_a_config_error(tmp_path):
    """With the wandb package not importable, the config fails at load naming the extra to install."""
    script = (
        "import sys\n"
        "class Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'wandb' or name.startswith('wandb.'): raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Hide())\n"
        "from rlkit.config import load_config\n"
        f"load_config({DEMO!r}, overrides=['log.backends=[jsonl, wandb]'])\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "log.backends: backend 'wandb' needs the 'wandb' package, which is not installed: pip install 'rlkit[wandb]'" in proc.stderr


def test_wandb_resumed_run_keeps_its_run_id(tmp_path):
    from .wandb_records import history, records

    cfg = load_config(DEMO, overrides=[f"output_dir={tmp_path}", "name=resumed", "log.backends=[jsonl, wandb]"])
    cfg.run_dir.mkdir(parents=True)
    ids = []
    for start, steps in ((1, (1, 2)), (3, (3,))):
        log = RunLogger(RunInfo(config=cfg, run_dir=cfg.run_dir, total_steps=3, start_step=start))
        for step in steps:
            log.log_metrics(step, STEPS[step])
        log.close()
        time.sleep(1.1)  # offline run folders are named by the second they start
    for offline in sorted((cfg.run_dir / "wandb").glob("offline-run-*")):
        (file,) = offline.glob("run-*.wandb")
        run = next(r.run for r in records(file) if r.WhichOneof("record_type") == "run")
        ids.append((run.run_id, [row["_step"] for row in history(file)]))
    assert len(ids) == 2 and ids[0][0] == ids[1][0]  # one W&B run, logged by two processes
    assert [steps for _, steps in ids] == [[1, 2], [3]]
