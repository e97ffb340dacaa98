"""The worker pool: per-item timeouts from any thread, crashes, errors, order, worker replacement."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import reward_helpers

from rlkit.rewards import RewardJob, RewardPool, RewardPoolError, RewardResult, score_batch
from rlkit.rewards.modules import ModuleSource


def test_results_keep_order_and_values(pool):
    completions = ["a" * n for n in range(20)]
    results = score_batch("t_len", completions, [{}] * 20, params={"scale": 0.5}, pool=pool)
    assert [r.score for r in results] == [n * 0.5 for n in range(20)]
    assert all(r.error is None for r in results)


def test_both_workers_are_used(pool):
    results = score_batch("t_sleep", ["x"] * 4, [{"sleep": 0.3}] * 4, pool=pool)
    assert [r.score for r in results] == [1.0] * 4
    pids = {r.info["pid"] for r in score_batch("t_pid", ["x"] * 6, [{}] * 6, pool=pool)}
    assert len(pids) == 2


def test_hung_item_times_out_and_its_worker_is_replaced(pool):
    restarts = pool.restarts
    samples = [{"sleep": 0}, {"sleep": 60}, {"sleep": 0}, {"sleep": 0}]
    start = time.monotonic()
    results = score_batch("t_sleep", ["x"] * 4, samples, timeout_s=1.0, fallback_score=-1.0, pool=pool)
    elapsed = time.monotonic() - start
    assert [r.score for r in results] == [1.0, -1.0, 1.0, 1.0]
    assert results[1].error == "timed out after 1 s"
    assert results[1].info == {"failure": "timeout"}
    assert elapsed < 8.0
    assert pool.restarts == restarts + 1
    # The replacement serves the next batch.
    assert [r.score for r in score_batch("t_len", ["ab"] * 3, [{}] * 3, pool=pool)] == [2.0, 2.0, 2.0]


def test_timeout_works_from_a_non_main_thread(pool):
    out: list[RewardResult] = []
    thread = threading.Thread(
        target=lambda: out.extend(score_batch("t_sleep", ["x", "y"], [{"sleep": 60}, {}], timeout_s=0.5, pool=pool))
    )
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert [(r.score, r.error) for r in out] == [(0.0, "timed out after 0.5 s"), (1.0, None)]


def test_timeout_works_in_a_subprocess_without_a_main_guard(tmp_path):
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(tmp_path)!r})
        from rlkit.rewards import score_batch
        import reward_helpers
        start = time.monotonic()
        r = score_batch(reward_helpers.sleep_reward, ["x"], [{{"sleep": 60}}], timeout_s=0.5, workers=1)
        print(r[0].error, round(time.monotonic() - start) < 20)
        """
    )
    (tmp_path / "reward_helpers.py").write_text(Path(reward_helpers.__file__).read_text())
    done = subprocess.run([sys.executable, "-"], input=script, capture_output=True, text=True, timeout=120, check=False)
    assert done.stdout.strip() == "timed out after 0.5 s True", done.stderr


def test_crashing_worker_gives_a_crash_result(pool):
    results = score_batch("t_crash", ["ok", "crash", "ok"], [{}] * 3, fallback_score=-2.0, pool=pool)
    assert [r.score for r in results] == [0.5, -2.0, 0.5]
    assert results[1].error == "worker process died (exit code 7)"
    assert results[1].info == {"failure": "crash"}


def test_raising_and_nan_rewards_become_errors(pool):
    [raised] = score_batch("t_raise", ["x"], [{}], fallback_score=0.25, pool=pool)
    assert (raised.score, raised.error) == (0.25, "ZeroDivisionError: division by zero")
    assert raised.info == {"failure": "error"}
    [nan] = score_batch("t_nan", ["x"], [{}], pool=pool)
    assert nan.error == "ValueError: RewardResult.score must be finite, got nan"


def test_bad_item_types_are_errors_not_exceptions(pool):
    results = score_batch("t_len", ["ok", None, b"bytes", "fine"], [{}, {}, {}, "not a dict"], pool=pool)
    assert [r.score for r in results] == [2.0, 0.0, 0.0, 0.0]
    assert [r.error for r in results] == [
        None,
        "completion must be a str, got NoneType",
        "completion must be a str, got bytes",
        "sample must be a dict, got str",
    ]


def test_unpicklable_sample_is_an_item_error(pool):
    results = score_batch("t_len", ["a", "b"], [{"lock": threading.Lock()}, {}], pool=pool)
    assert results[0].error.startswith("cannot send item to a worker: TypeError: cannot pickle")
    assert results[1] == RewardResult(1.0)


def test_function_passed_by_reference(pool):
    results = score_batch(reward_helpers.unregistered_reward, ["x", "y"], [{"expected": "x"}] * 2, pool=pool)
    assert [r.score for r in results] == [2.0, 0.0]


def test_setup_runs_once_per_worker_outside_the_item_timeout():
    with RewardPool(workers=1, modules=[ModuleSource("reward_helpers")]) as p:
        first = score_batch("t_setup", ["x", "y"], [{}, {}], timeout_s=1.0, params={"tag": "a"}, pool=p)
        assert [(r.score, r.error, r.info) for r in first] == [(1.0, None, {"setups": 1})] * 2
        again = score_batch("t_setup", ["x"], [{}], timeout_s=1.0, params={"tag": "b"}, pool=p)
        assert again[0].info == {"setups": 2}


def test_length_mismatch_and_unknown_reward_raise():
    with pytest.raises(ValueError, match="2 completions but 1 samples"):
        score_batch("math", ["a", "b"], [{}])
    with pytest.raises(ValueError, match="unknown reward 'no_such_reward'; known rewards: "):
        score_batch("no_such_reward", ["a"], [{}])
    with pytest.raises(ValueError, match="reward 'math' has no parameter 'foo'"):
        score_batch("math", ["a"], [{}], params={"foo": 1})


def test_worker_that_fails_to_start_raises_pool_error():
    missing = ModuleSource("no_such_module_for_rlkit_tests")
    expected = pytest.raises(RewardPoolError, match=f"No module named '{missing.name}'")
    with RewardPool(workers=1, modules=[missing]) as p, expected:
        p.run([RewardJob("math", "x", {"answer": "1"})], timeout_s=5.0)


def test_closed_pool_refuses_work():
    p = RewardPool(workers=1)
    p.close()
    with pytest.raises(RewardPoolError, match="the reward pool is closed"):
        p.run([RewardJob("math", "x", {"answer": "1"})], timeout_s=1.0)


def test_large_item_is_not_queued_behind_a_hung_one():
    # A 1 MB message could fill the socket buffer and block the parent past the deadline.
    with RewardPool(workers=1, modules=[ModuleSource("reward_helpers")]) as p:
        completions = ["x", "y" * 1_000_000, "z"]
        start = time.monotonic()
        results = score_batch("t_sleep", completions, [{"sleep": 60}, {}, {}], timeout_s=1.0, pool=p)
        elapsed = time.monotonic() - start
    assert [(r.score, r.error) for r in results] == [(0.0, "timed out after 1 s"), (1.0, None), (1.0, None)]
    assert elapsed < 15.0


def test_timeout_works_inside_a_ray_actor():
    ray = pytest.importorskip("ray")
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    # On the actor, not on ray.init: another test may have started Ray already.
    here = str(Path(__file__).resolve().parent)
    runtime_env = {"env_vars": {"PYTHONPATH": os.pathsep.join([here, *sys.path])}}
    try:

        @ray.remote
        class Scorer:
            def score(self) -> list[tuple[float, str | None]]:
                import reward_helpers as helpers

                from rlkit.rewards import score_batch

                results = score_batch(helpers.sleep_reward, ["x", "y"], [{"sleep": 60}, {}], timeout_s=1.0, workers=1)
                return [(r.score, r.error) for r in results]

        actor = Scorer.options(runtime_env=runtime_env).remote()
        assert ray.get(actor.score.remote(), timeout=120) == [(0.0, "timed out after 1 s"), (1.0, None)]
    finally:
        if started_here:
            ray.shutdown()


def test_worker_killed_while_starting_is_replaced():
    with RewardPool(workers=1) as p:
        p._workers[0].proc.kill()  # dies before it could report ready
        results = p.run([RewardJob("arithmetic", "Answer: 3", {"answer": 3})], timeout_s=5.0)
        assert results == [RewardResult(1.0, info={"extracted": 3})]
        assert p.restarts == 1
