"""The object API's pieces without engines: user rows, callable rewards in real worker processes,
the callable step counter, callbacks, sample records."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import threading

import pytest

from rlkit.data import DataError
from rlkit.rewards.config import RewardConfig
from rlkit.tracking.samples import sample_records
from rlkit.user_api import CallbackList, StepCounter, reward_from_callables, rows_from_data


def test_rows_from_a_list_and_a_dataset():
    from datasets import Dataset

    rows = [{"prompt": "1+1?", "answer": "2"}, {"prompt": "2+2?", "answer": "4"}]
    assert rows_from_data(rows, prompt_field="prompt", required_fields=["answer"], what="train_data") == rows
    ds = Dataset.from_list(rows)
    assert rows_from_data(ds, prompt_field="prompt", required_fields=["answer"], what="train_data") == rows


def test_rows_with_a_missing_field_name_the_row_and_field():
    rows = [{"prompt": "1+1?", "answer": "2"}, {"prompt": "2+2?"}]
    with pytest.raises(DataError, match=r"eval_data: row 1 has no field 'answer' \(fields present: \['prompt'\]\)"):
        rows_from_data(rows, prompt_field="prompt", required_fields=["answer"], what="eval_data")
    with pytest.raises(TypeError, match="train_data must be a list of row dicts or a datasets.Dataset, got str"):
        rows_from_data("rows.jsonl", prompt_field="prompt", required_fields=[], what="train_data")
    with pytest.raises(DataError, match="train_data: no rows"):
        rows_from_data([], prompt_field="prompt", required_fields=[], what="train_data")


def exact(completion: str, sample: dict) -> float:
    return float(completion.strip() == sample["answer"])


def test_callable_rewards_score_in_worker_processes():
    """A module function, a lambda and a closure, weighted, through the real reward pool."""
    bonus = 0.5

    def short(completion: str, sample: dict) -> float:  # a closure over `bonus`
        return bonus if len(completion) < 3 else 0.0

    base = RewardConfig(name="arithmetic", timeout_s=7.0, workers=1)
    scorer = reward_from_callables([exact, (short, 2.0), lambda c, s: float("4" in c)], base)
    try:
        assert [c.name for c in scorer.components] == ["exact", "short", "lambda"]
        assert [c.weight for c in scorer.components] == [1.0, 2.0, 1.0]
        assert scorer.cfg.timeout_s == 7.0 and scorer.cfg.workers == 1
        batch = scorer(["4", "five", " 44"], [{"answer": "4"}, {"answer": "5"}, {"answer": "44"}])
        # 1*exact + 2*short + 1*contains-4:  "4" -> 1 + 1 + 1;  "five" -> 0 + 0 + 0;  " 44" -> 1 + 0 + 1
        assert batch.scores == [3.0, 0.0, 2.0]
        assert batch.metrics["reward/short/mean"] == pytest.approx(0.5 / 3)  # component means are unweighted
        assert all(r["exact"].error is None for r in batch.results)
    finally:
        scorer.close()


def test_a_reward_defined_in_a_scripts_main_reaches_the_workers(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(
        "from rlkit.user_api import reward_from_callables\n"
        "def brief(completion, sample):\n"
        "    return 1.0 if len(completion) <= sample['limit'] else -1.0\n"
        "if __name__ == '__main__':\n"
        "    scorer = reward_from_callables(brief, None)\n"
        "    print(scorer(['ab', 'abcdef'], [{'limit': 3}, {'limit': 3}]).scores)\n"
        "    scorer.close()\n"
    )
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "[1.0, -1.0]"


def test_an_unpicklable_reward_is_refused_with_what_to_do():
    lock = threading.Lock()

    def locked(completion: str, sample: dict) -> float:
        with lock:
            return 1.0

    with pytest.raises(TypeError, match=r"reward_fn\[1\] \(locked\) cannot be sent to the reward worker processes"):
        reward_from_callables([exact, locked], None)
    with pytest.raises(TypeError, match=r"reward_fn\[0\]: 3 is not callable"):
        reward_from_callables([3], None)


def test_step_counter_is_an_int_that_runs_the_next_step():
    calls = []
    counter = StepCounter(4, lambda *a, **k: calls.append((a, k)) or {"loss": 0.5})
    assert counter == 4 and counter + 1 == 5 and counter % 2 == 0 and f"step_{counter}" == "step_4"
    assert json.dumps({"step": counter}) == '{"step": 4}'
    restored = pickle.loads(pickle.dumps(counter))
    assert restored == 4 and type(restored) is int  # never pickles the trainer it points to
    assert counter(make_rollouts=None) == {"loss": 0.5} and calls == [((), {"make_rollouts": None})]


def test_callbacks_get_their_events_and_objects_without_any_are_refused():
    seen = []

    class OnlySteps:
        def on_step_end(self, trainer, metrics):
            seen.append(("step", trainer, metrics["loss"]))

    class OnlyCheckpoints:
        def on_checkpoint(self, trainer, path):
            seen.append(("ckpt", trainer, path))

    callbacks = CallbackList([OnlySteps(), OnlyCheckpoints()])
    callbacks.fire("on_step_end", "T", {"loss": 1.5})
    callbacks.fire("on_eval", "T", {"eval/greedy": 1.0})
    callbacks.fire("on_checkpoint", "T", "step_2")
    assert seen == [("step", "T", 1.5), ("ckpt", "T", "step_2")]
    with pytest.raises(TypeError, match="has none of the methods on_step_end, on_eval, on_checkpoint"):
        CallbackList([object()])


def test_sample_records_take_the_first_groups_whole():
    rows = [{"prompt": "p0"}, {"prompt": [{"role": "user", "content": "p1"}]}, {"prompt": "p2"}]
    records = sample_records(
        rows=[rows[0], rows[1], rows[0], rows[2], rows[1]], texts=["a", "b", "c", "d", "e"], lengths=[1, 2, 3, 4, 5],
        truncated=[False, True, False, False, False], group_ids=[7, 9, 7, 11, 9],
        task_scores=[1.0, 0.0, 0.0, 1.0, 1.0], rewards=[1.0, -0.5, 0.0, 1.0, 1.0],
        advantages=[0.7071, -0.7071, -0.7071, 0.0, 0.7071], prompt_field="prompt", groups=2,
    )
    assert [(r["group"], r["prompt"], r["completion"], r["advantage"]) for r in records] == [
        (0, "p0", "a", 0.7071), (1, "p1", "b", -0.7071), (0, "p0", "c", -0.7071), (1, "p1", "e", 0.7071)
    ]
    assert records[1] == {"group": 1, "prompt": "p1", "completion": "b", "task_score": 0.0, "reward": -0.5,
                          "advantage": -0.7071, "length": 2, "truncated": True}
