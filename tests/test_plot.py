"""``rlkit plot``: the smoothing, which metrics land in which PNG, and real PNG files from the CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from rlkit.plot import PANELS, load_runs, moving_average


def test_moving_average_is_trailing_over_steps():
    # window 3, every step: [1], [1,2], [1,2,3], [2,3,4], [3,4,10]
    assert moving_average([1, 2, 3, 4, 5], [1.0, 2.0, 3.0, 4.0, 10.0], 3) == [1.0, 1.5, 2.0, 3.0, pytest.approx(17 / 3)]
    # logged every 4 steps, window 5: steps 4 | 4,8 | 8,12 | 12,16
    assert moving_average([4, 8, 12, 16], [1.0, 3.0, 5.0, 9.0], 5) == [1.0, 2.0, 4.0, 7.0]
    assert moving_average([1, 2], [5.0, 7.0], 1) == [5.0, 7.0]


def test_panels_pick_their_metrics():
    keys = sorted([
        "reward/mean", "reward/std", "reward/task_mean", "reward/math/mean", "reward/math/errors", "reward/format/mean",
        "response/length_mean", "actor/entropy", "actor/clip_frac", "actor/clip_frac_high", "actor/approx_kl",
        "rollout/mismatch_kl", "rollout/logprob_diff", "eval/mean@k", "eval/pass@k", "time/generate_s",
        "time/train_s", "time/sync_s", "time/step_s", "loss",
    ])
    picked = {p.file: p.select(keys) for p in PANELS}
    assert picked["reward.png"] == ["reward/mean", "reward/task_mean", "reward/std", "reward/format/mean", "reward/math/mean"]
    assert picked["clip.png"] == ["actor/clip_frac", "actor/clip_frac_high"]
    assert picked["kl.png"] == ["actor/approx_kl", "rollout/mismatch_kl"]
    assert picked["eval.png"] == ["eval/mean@k", "eval/pass@k"]
    assert picked["time.png"] == ["time/step_s", "time/generate_s", "time/train_s", "time/sync_s"]


def _run(path, *, offset: float, steps: int = 12, eval_every: int = 4):
    path.mkdir(parents=True)
    with (path / "metrics.jsonl").open("w") as f:
        for s in range(1, steps + 1):
            record = {"step": s, "reward/mean": offset + 0.03 * s + 0.05 * math.sin(s), "response/length_mean": 20 - s / 2,
                      "actor/entropy": 1.0 / s, "actor/clip_frac": 0.01 * s, "rollout/logprob_diff": 3e-6,
                      "time/generate_s": 5.0, "time/train_s": 20.0, "time/sync_s": 0.5, "time/step_s": 25.5}
            if s % eval_every == 0:
                record.update({"eval/mean@k": offset + 0.02 * s, "eval/pass@k": 0.5 + 0.02 * s, "eval/greedy": 0.6})
            f.write(json.dumps(record) + "\n")


def test_cli_writes_readable_pngs_for_overlaid_runs(tmp_path):
    import matplotlib.image

    _run(tmp_path / "a", offset=0.3)
    _run(tmp_path / "b", offset=0.4)
    out = tmp_path / "plots"
    proc = subprocess.run([sys.executable, "-m", "rlkit", "plot", str(tmp_path / "a"), str(tmp_path / "b"),
                           "--out", str(out), "--smooth", "3"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    written = sorted(p.name for p in out.iterdir())
    assert written == ["clip.png", "entropy.png", "eval.png", "length.png", "logprob_diff.png", "overview.png",
                       "reward.png", "time.png", "time_split.png"]  # no KL metrics in these runs: no kl.png
    assert proc.stdout.split() == [str(out / n) for n in
                                   ["reward.png", "length.png", "entropy.png", "clip.png", "logprob_diff.png",
                                    "eval.png", "time.png", "time_split.png", "overview.png"]]
    image = matplotlib.image.imread(out / "time.png")  # 4 panels -> 3 columns x 2 rows at 110 dpi
    assert image.shape[:2] == (round(3.4 * 2 * 110), round(5.2 * 3 * 110))


def test_a_folder_without_metrics_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothere: no metrics.jsonl \(give run directories"):
        load_runs([tmp_path / "nothere"])
