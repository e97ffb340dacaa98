"""The run directory ``<output_dir>/<name>``: one run per folder, atomic checkpoints, rotation, auto-resume.

- A new run refuses a folder that already holds a run's ``metrics.jsonl`` unless
  ``trainer.resume: auto`` (continue from its latest complete checkpoint) or
  ``trainer.overwrite`` (``rlkit train --overwrite``: delete it and start over).
- A checkpoint is written into ``step_N.tmp-<pid>`` and renamed to ``step_N`` only when
  every file is in place (:func:`atomic_dir`), so a kill mid-write leaves a ``.tmp-``
  folder that :func:`latest_checkpoint` never picks and the next start deletes.
- ``trainer.keep_last`` keeps the newest N ``step_N`` folders (:func:`rotate_checkpoints`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from rlkit.tracking.jsonl import METRICS_FILE, read_metrics, truncate_after

logger = logging.getLogger("rlkit")

CHECKPOINTS = "checkpoints"
STATE_FILE = "trainer_state.json"
_COMPLETE = re.compile(r"^step_(\d+)$")


class RunDirError(RuntimeError):
    """The run directory holds another run and neither resume nor overwrite was asked for."""


def prepare_run_dir(
    run_dir: Path, *, resume: str = "never", overwrite: bool = False, checkpoints: Path | None = None
) -> Path | None:
    """Make ``run_dir`` ready for a run; returns the checkpoint to resume from (``resume="auto"``), else None.
    ``checkpoints``: where the run's checkpoints are (``trainer.checkpoint_dir``; default ``run_dir/checkpoints``).

    With ``resume="auto"`` the metrics and samples of steps after that checkpoint are dropped
    (the resumed run redoes them); with no complete checkpoint the run starts over.
    """
    run_dir = Path(run_dir)
    metrics = run_dir / METRICS_FILE
    if overwrite and run_dir.exists():
        logger.warning("trainer.overwrite: deleting the previous run in %s", run_dir)
        shutil.rmtree(run_dir)
    if overwrite and checkpoints is not None and Path(checkpoints).is_dir():  # trainer.checkpoint_dir elsewhere
        for old in [p for p in Path(checkpoints).iterdir() if p.name.startswith("step_")]:
            shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(missing_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    used = metrics.is_file() and bool(metrics.read_text().strip())
    if used and resume != "auto":  # refused before anything in the folder changes
        steps = [r["step"] for r in read_metrics(metrics)]
        raise RunDirError(
            f"{run_dir} already holds a run ({METRICS_FILE} up to step {max(steps, default=0)}); set "
            f"trainer.resume=auto to continue it from its latest checkpoint, pass --overwrite "
            f"(trainer.overwrite=true) to start over, or choose another name="
        )
    checkpoints = Path(checkpoints) if checkpoints is not None else run_dir / CHECKPOINTS
    remove_partial_checkpoints(checkpoints)
    if not used:
        return None
    checkpoint = latest_checkpoint(checkpoints)
    step = checkpoint_step(checkpoint) if checkpoint else 0
    dropped = truncate_after(run_dir, step)
    if checkpoint is None:
        logger.warning("trainer.resume=auto: %s has no complete checkpoint; starting over", run_dir)
    else:
        logger.info("trainer.resume=auto: resuming %s from %s (%d logged steps after it dropped)", run_dir, checkpoint, dropped)
    return checkpoint


def checkpoint_step(path: Path) -> int:
    match = _COMPLETE.match(Path(path).name)
    if match is None:
        raise ValueError(f"{path}: not a checkpoint folder name (step_<N>)")
    return int(match.group(1))


def complete_checkpoints(checkpoints: Path) -> list[Path]:
    """The ``step_N`` folders with their trainer state, oldest first (``.tmp-`` folders never count)."""
    if not Path(checkpoints).is_dir():
        return []
    found = [p for p in Path(checkpoints).iterdir() if p.is_dir() and _COMPLETE.match(p.name) and (p / STATE_FILE).is_file()]
    return sorted(found, key=checkpoint_step)


def latest_checkpoint(checkpoints: Path) -> Path | None:
    complete = complete_checkpoints(checkpoints)
    return complete[-1] if complete else None


def remove_partial_checkpoints(checkpoints: Path) -> list[Path]:
    """Delete ``*.tmp-<pid>`` folders left by a write that was killed; returns them."""
    if not Path(checkpoints).is_dir():
        return []
    partial = [p for p in Path(checkpoints).iterdir() if ".tmp-" in p.name]
    for p in partial:
        logger.warning("deleting %s: a checkpoint write that never finished", p)
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    return partial


@contextlib.contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield ``<final>.tmp-<pid>`` to write into; on success rename it to ``final`` (replacing an older
    ``final``); on an exception delete it. Readers only ever see complete folders."""
    final = Path(final)
    tmp = final.with_name(f"{final.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():  # a re-save of the same step: move the old one aside first
        old = final.with_name(f"{final.name}.tmp-old-{os.getpid()}")
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    _fsync_dir(final.parent)


def rotate_checkpoints(checkpoints: Path, *, keep_last: int | None) -> list[Path]:
    """Delete all but the newest ``keep_last`` complete checkpoints; returns the deleted ones."""
    if keep_last is None:
        return []
    old = complete_checkpoints(checkpoints)[:-keep_last]
    for path in old:
        shutil.rmtree(path, ignore_errors=True)
        logger.info("trainer.keep_last=%d: deleted %s", keep_last, path)
    return old


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
