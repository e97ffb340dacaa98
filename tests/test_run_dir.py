"""Run-directory hygiene: refuse a used run dir, overwrite, resume=auto, atomic checkpoints, rotation."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from rlkit.config import ConfigError, load_config
from rlkit.run_dir import (
    RunDirError,
    atomic_dir,
    complete_checkpoints,
    latest_checkpoint,
    prepare_run_dir,
    rotate_checkpoints,
)


def _metrics(run_dir, steps):
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "reward/mean": s / 10}) + "\n" for s in steps))


def _checkpoint(run_dir, step, *, complete=True, name=None):
    path = run_dir / "checkpoints" / (name or f"step_{step}")
    path.mkdir(parents=True)
    (path / "model.safetensors").write_bytes(b"w" * 16)
    if complete:
        (path / "trainer_state.json").write_text(json.dumps({"step": step}))
    return path


def test_a_fresh_dir_is_created_and_an_empty_one_reused(tmp_path):
    assert prepare_run_dir(tmp_path / "a") is None and (tmp_path / "a").is_dir()
    assert prepare_run_dir(tmp_path / "a") is None  # no metrics yet: nothing to protect


def test_a_dir_with_metrics_is_refused_without_resume_or_overwrite(tmp_path):
    _metrics(tmp_path / "a", [1, 2, 3])
    partial = _checkpoint(tmp_path / "a", 3, name="step_3.tmp-77")
    with pytest.raises(RunDirError, match=r"a already holds a run \(metrics.jsonl up to step 3\); set trainer.resume=auto"):
        prepare_run_dir(tmp_path / "a")
    assert len((tmp_path / "a" / "metrics.jsonl").read_text().splitlines()) == 3  # untouched
    assert partial.is_dir()  # a refused start deletes nothing


def test_overwrite_deletes_the_previous_run(tmp_path):
    _metrics(tmp_path / "a", [1, 2])
    _checkpoint(tmp_path / "a", 2)
    assert prepare_run_dir(tmp_path / "a", overwrite=True) is None
    assert list((tmp_path / "a").iterdir()) == []


def test_resume_auto_picks_the_latest_complete_checkpoint_and_drops_later_metrics(tmp_path):
    run = tmp_path / "a"
    _metrics(run, [1, 2, 3, 4, 5])
    (run / "samples.jsonl").write_text('{"step": 2, "x": 1}\n{"step": 4, "x": 2}\n')
    _checkpoint(run, 2)
    _checkpoint(run, 4)
    _checkpoint(run, 5, complete=False)  # no trainer_state.json: never picked
    _checkpoint(run, 6, name="step_6.tmp-4242")  # a write killed before its rename
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 6, "rew')  # a line cut short by the kill
    assert prepare_run_dir(run, resume="auto") == run / "checkpoints" / "step_4"
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4]
    assert [json.loads(line)["step"] for line in (run / "samples.jsonl").read_text().splitlines()] == [2, 4]
    assert not (run / "checkpoints" / "step_6.tmp-4242").exists()  # the partial write is deleted


def test_resume_auto_without_a_checkpoint_starts_over(tmp_path):
    _metrics(tmp_path / "a", [1, 2])
    assert prepare_run_dir(tmp_path / "a", resume="auto") is None
    assert (tmp_path / "a" / "metrics.jsonl").read_text() == ""


def test_atomic_dir_renames_only_when_complete(tmp_path):
    final = tmp_path / "checkpoints" / "step_3"
    with pytest.raises(RuntimeError):
        with atomic_dir(final) as tmp:
            assert tmp.name == f"step_3.tmp-{os.getpid()}"
            (tmp / "half").write_text("x")
            raise RuntimeError("disk full")
    assert list((tmp_path / "checkpoints").iterdir()) == []
    with atomic_dir(final) as tmp:
        (tmp / "trainer_state.json").write_text("{}")
        assert not final.exists()  # invisible until complete
    assert sorted(p.name for p in final.iterdir()) == ["trainer_state.json"]
    with atomic_dir(final) as tmp:  # re-saving a step replaces the old folder whole
        (tmp / "trainer_state.json").write_text('{"again": 1}')
    assert (final / "trainer_state.json").read_text() == '{"again": 1}'
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step_3"]


def test_a_write_killed_mid_way_is_never_picked_up(tmp_path):
    """SIGKILL a process while it writes a checkpoint through atomic_dir: step_2 stays the latest."""
    run = tmp_path / "a"
    _checkpoint(run, 2)
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from rlkit.run_dir import atomic_dir\n"
        f"with atomic_dir(Path({str(run / 'checkpoints' / 'step_3')!r})) as tmp:\n"
        "    (tmp / 'trainer_state.json').write_text('{\"step\": 3}')\n"
        "    print('writing', flush=True)\n"
        "    time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "writing\n"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert [p.name for p in sorted((run / "checkpoints").iterdir())] == ["step_2", f"step_3.tmp-{proc.pid}"]
    assert latest_checkpoint(run / "checkpoints") == run / "checkpoints" / "step_2"
    _metrics(run, [1, 2, 3])
    assert prepare_run_dir(run, resume="auto") == run / "checkpoints" / "step_2"
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step_2"]


def test_keep_last_rotates_old_checkpoints(tmp_path):
    for step in (2, 4, 6, 8):
        _checkpoint(tmp_path, step)
    _checkpoint(tmp_path, 10, complete=False)
    deleted = rotate_checkpoints(tmp_path / "checkpoints", keep_last=2)
    assert [p.name for p in deleted] == ["step_2", "step_4"]
    assert [p.name for p in complete_checkpoints(tmp_path / "checkpoints")] == ["step_6", "step_8"]
    assert rotate_checkpoints(tmp_path / "checkpoints", keep_last=None) == []


def test_resume_config_is_checked():
    demo = "examples/arithmetic_grpo.yaml"
    cfg = load_config(demo)
    assert (cfg.trainer.save_every, cfg.trainer.keep_last, cfg.trainer.resume) == (0, 3, "never")  # the demo sets 0
    from rlkit.config import TrainerConfig

    assert (TrainerConfig().save_every, TrainerConfig().keep_last) == (10, 3)  # defaults without the demo's
    with pytest.raises(ConfigError, match=r"trainer: give trainer.resume=auto .* or trainer.resume_from, not both"):
        load_config(demo, overrides=["trainer.resume=auto", "trainer.resume_from=x"])
    with pytest.raises(ConfigError, match="trainer.resume=auto continues the run that trainer.overwrite would delete"):
        load_config(demo, overrides=["trainer.resume=auto", "trainer.overwrite=true"])


def test_checkpoints_elsewhere_are_resumed_and_overwritten(tmp_path):
    """trainer.checkpoint_dir outside the run directory: resume=auto looks there, overwrite clears it."""
    run, elsewhere = tmp_path / "a", tmp_path / "shared" / "a"
    _metrics(run, [1, 2, 3])
    for step in (1, 2):
        path = elsewhere / f"step_{step}"
        path.mkdir(parents=True)
        (path / "trainer_state.json").write_text(json.dumps({"step": step}))
    (elsewhere / "step_3.tmp-99").mkdir()
    assert prepare_run_dir(run, resume="auto", checkpoints=elsewhere) == elsewhere / "step_2"
    assert sorted(p.name for p in elsewhere.iterdir()) == ["step_1", "step_2"]
    assert prepare_run_dir(run, overwrite=True, checkpoints=elsewhere) is None
    assert list(elsewhere.iterdir()) == []
