"""Remote calls with a timeout and errors that name the actor, its node and the step (real Ray)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from rlkit.cluster.calls import ActorDied, ActorInfo, CallTimeout, gather


def _sleeper_class():
    """Defined in a function so Ray ships it by value (workers cannot import this test module)."""

    class Sleeper:
        def where(self) -> dict:
            from rlkit.cluster.calls import where

            return where()

        def nap(self, seconds: float) -> float:
            time.sleep(seconds)
            return seconds

        def fail(self) -> None:
            raise ValueError("bad row 3")

    return Sleeper


@pytest.fixture(scope="module")
def actors(local_ray):
    import ray

    handles = [ray.remote(_sleeper_class()).options(num_cpus=0).remote() for _ in range(2)]
    infos = [ActorInfo(f"learner rank {r}", **w) for r, w in enumerate(ray.get([h.where.remote() for h in handles]))]
    yield handles, infos
    for h in handles:
        ray.kill(h)


def test_answers_come_back_in_order(actors):
    handles, infos = actors
    refs = [h.nap.remote(s) for h, s in zip(handles, (0.2, 0.0))]
    assert gather(refs, actors=infos, what="nap", timeout_s=30, step=1) == [0.2, 0.0]


def test_a_call_past_its_timeout_names_the_late_actor_node_and_step(actors):
    handles, infos = actors
    refs = [handles[0].nap.remote(0.0), handles[1].nap.remote(5.0)]
    started = time.monotonic()
    with pytest.raises(CallTimeout) as err:
        gather(refs, actors=infos, what="train_mini_batch", timeout_s=1.0, step=7)
    assert time.monotonic() - started < 4.0
    assert err.value.actor == infos[1] and err.value.step == 7
    assert str(err.value) == (
        f"train_mini_batch: no answer at step 7 within 1 s (ray.call_timeout_s) from {infos[1]}"
    )
    assert f"node {infos[1].ip}, node id {infos[1].node_id[:16]}, pid {infos[1].pid}" in str(infos[1])
    gather([refs[1]], actors=infos[1:], what="drain", timeout_s=30, step=7)


def test_a_raised_error_keeps_its_type_and_gains_where_it_happened(actors):
    handles, infos = actors
    with pytest.raises(ValueError, match="bad row 3") as err:
        gather([handles[0].nap.remote(0.0), handles[1].fail.remote()], actors=infos, what="score", timeout_s=30, step=2)
    assert f"rlkit: score failed on {infos[1]} at step 2" in err.value.__notes__


def test_a_killed_actor_is_reported_dead_not_its_waiting_peer(actors):
    """The peer of a dead rank would wait for it (a collective); the dead one is named."""
    handles, infos = actors
    refs = [handles[0].nap.remote(3.0), handles[1].nap.remote(30.0)]
    time.sleep(0.5)
    os.kill(infos[1].pid, signal.SIGKILL)
    with pytest.raises(ActorDied) as err:
        gather(refs, actors=infos, what="train_mini_batch", timeout_s=60, step=4)
    assert err.value.actor == infos[1]
    assert str(err.value).startswith(f"train_mini_batch: {infos[1]} died at step 4: ")
