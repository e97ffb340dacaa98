"""Work-stealing generation dispatch (rlkit/rollout/work_stealing.py) with real Ray actors whose
calls take uneven times: chunk order, reassembly, no engine idle while work remains, a dead
engine's chunk redone, a late call named."""

from __future__ import annotations

import itertools
import os
import time

import pytest

from rlkit.cluster.calls import ActorDied, ActorInfo, CallTimeout
from rlkit.rollout.work_stealing import chunk_indices, default_chunk_size, steal


def _slow_engine_class():
    """Defined in a function so Ray pickles it by value (the test module is not importable on workers)."""

    class SlowEngine:
        """Answers a chunk of prompt indices after sleeping ``delay[i]`` seconds per prompt."""

        def __init__(self, name: int, delays: dict[int, float], die_on: int | None = None) -> None:
            self.name, self.delays, self.die_on = name, delays, die_on

        def ping(self) -> int:
            return os.getpid()

        def generate(self, chunk: list[int]) -> list[tuple[int, int]]:
            if self.die_on is not None and self.die_on in chunk:
                os._exit(1)  # the engine process dies mid-call
            time.sleep(sum(self.delays.get(i, 0.0) for i in chunk))
            return [(i, self.name) for i in chunk]

    return SlowEngine


def _engines(ray, delays, count, die_on=None):
    actors = [ray.remote(_slow_engine_class()).options(num_cpus=0).remote(i, delays, die_on if i == 0 else None) for i in range(count)]
    ray.get([a.ping.remote() for a in actors])  # started before the clock runs
    return actors


def test_chunks_cover_prompts_in_order():
    assert chunk_indices(7, 3) == [[0, 1, 2], [3, 4, 5], [6]]
    assert chunk_indices(2, 5) == [[0, 1]]
    assert default_chunk_size(16, 1) == 16  # one engine: one batched call, as before
    assert default_chunk_size(16, 2) == 2  # about four chunks per engine
    assert default_chunk_size(3, 4) == 1
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        chunk_indices(4, 0)


def test_slow_chunk_does_not_hold_the_round(local_ray):
    import ray

    # Prompt 0 is slow (1.2 s); prompts 1..6 take 0.1 s each. Round-robin would give engine 0
    # prompts 0,2,4,6 (1.5 s) and engine 1 prompts 1,3,5 (0.3 s idle for 1.2 s).
    delays = {0: 1.2, **{i: 0.1 for i in range(1, 7)}}
    actors = _engines(ray, delays, 2)
    chunks = chunk_indices(7, 1)
    t0 = time.monotonic()
    result = steal(
        chunks, num_engines=2, submit=lambda e, c: actors[e].generate.remote(c),
        infos=lambda e: ActorInfo(f"engine {e}"), on_dead=lambda e, err: pytest.fail(str(err)),
        timeout_s=30, step=3,
    )  # fmt: skip
    wall = time.monotonic() - t0
    # reassembled in chunk (prompt) order whoever ran them
    assert [i for out in result.outputs for i, _ in out] == list(range(7))
    by_engine = {e: sorted(r.chunk for r in result.runs if r.engine == e) for e in (0, 1)}
    assert by_engine == {0: [0], 1: [1, 2, 3, 4, 5, 6]}  # engine 1 took every chunk while 0 was busy
    assert [i for i, e in result.outputs[0]] == [0] and {e for out in result.outputs[1:] for _, e in out} == {1}
    # chunks were handed out in queue order, and engine 1 got its next chunk as soon as one returned
    runs1 = sorted((r for r in result.runs if r.engine == 1), key=lambda r: r.submitted)
    assert [r.chunk for r in runs1] == [1, 2, 3, 4, 5, 6]
    gaps = [b.submitted - a.answered for a, b in itertools.pairwise(runs1)]
    assert max(gaps) < 0.2, gaps  # the next chunk goes out on the answer (Ray call overhead only)
    assert wall < 1.2 + 0.25, wall  # the slow prompt alone bounds the round (round-robin: >= 1.5 s)
    for a in actors:
        ray.kill(a)


def test_dead_engine_is_restarted_and_its_chunk_redone(local_ray):
    import ray

    delays = {i: 0.05 for i in range(6)}
    actors = _engines(ray, delays, 2, die_on=0)
    restarted = []

    def restart(engine: int, err: ActorDied) -> None:
        assert isinstance(err, ActorDied) and "engine 0" in str(err) and "step 5" in str(err)
        restarted.append(engine)
        actors[engine] = _engines(ray, delays, 1)[0]  # a fresh engine 0 that does not die

    result = steal(
        chunk_indices(6, 2), num_engines=2, submit=lambda e, c: actors[e].generate.remote(c),
        infos=lambda e: ActorInfo(f"engine {e}"), on_dead=restart, timeout_s=30, step=5,
    )  # fmt: skip
    assert restarted == [0]
    assert [i for out in result.outputs for i, _ in out] == [0, 1, 2, 3, 4, 5]
    failed = [r for r in result.runs if not r.ok]
    assert [(r.chunk, r.engine) for r in failed] == [(0, 0)]
    assert sorted(r.chunk for r in result.runs if r.ok) == [0, 1, 2]
    for a in actors:
        ray.kill(a)


def test_late_call_fails_naming_the_engine(local_ray):
    import ray

    actors = _engines(ray, {0: 0.01, 1: 5.0}, 2)
    with pytest.raises(CallTimeout, match=r"generate: no answer at step 2 within 0.5 s .* engine 1"):
        steal(
            chunk_indices(2, 1), num_engines=2, submit=lambda e, c: actors[e].generate.remote(c),
            infos=lambda e: ActorInfo(f"engine {e}"), on_dead=lambda e, err: None, timeout_s=0.5, step=2,
        )  # fmt: skip
    for a in actors:
        ray.kill(a)
