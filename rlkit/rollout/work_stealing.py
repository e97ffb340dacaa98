"""Work-stealing dispatch of a generation round over engine actors.

A round's prompts are cut into small contiguous chunks in a shared queue. Every
engine starts with one chunk; whenever an engine's call returns (``ray.wait`` on
the calls in flight) it takes the next chunk from the queue, so an engine that
drew long answers does not hold the others idle while work remains (the
round-robin split decided up front did). Results are reassembled in chunk order,
so a round's output is in prompt order whichever engine ran which chunk; with
per-prompt sampling seeds (rlkit/rollout/types.py) the tokens do not depend on
the assignment either.

An engine whose process died is handed to ``on_dead`` (the pool restarts it) and
its chunk goes back to the front of the queue; every call is bounded by
``timeout_s`` from its submission and a late one fails naming the engine.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rlkit.cluster.calls import ActorDied, ActorInfo, CallTimeout

__all__ = ["ChunkRun", "StealResult", "chunk_indices", "default_chunk_size", "steal"]


def default_chunk_size(num_prompts: int, num_engines: int, *, chunks_per_engine: int = 4) -> int:
    """Prompts per chunk: one chunk for a single engine (one batched call, as before), else about
    ``chunks_per_engine`` chunks per engine so a slow engine's share can be taken by the others."""
    if num_engines <= 1:
        return max(num_prompts, 1)
    return max(1, math.ceil(num_prompts / (num_engines * chunks_per_engine)))


def chunk_indices(num_prompts: int, chunk_size: int) -> list[list[int]]:
    """Contiguous prompt index chunks ``[[0..c-1], [c..2c-1], ...]`` covering ``range(num_prompts)``."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    return [list(range(s, min(s + chunk_size, num_prompts))) for s in range(0, num_prompts, chunk_size)]


@dataclass(frozen=True)
class ChunkRun:
    """One call: chunk ``chunk`` on engine ``engine``, submitted and answered at these
    ``time.monotonic()`` instants (``ok`` False: the engine died during it)."""

    chunk: int
    engine: int
    submitted: float
    answered: float
    ok: bool


@dataclass
class StealResult:
    outputs: list[Any]  # one per chunk, in chunk order
    runs: list[ChunkRun] = field(default_factory=list)  # in answer order


def steal(
    chunks: Sequence[Any],
    *,
    num_engines: int,
    submit: Callable[[int, Any], Any],
    infos: Callable[[int], ActorInfo],
    on_dead: Callable[[int, ActorDied], None],
    timeout_s: float,
    step: int | None,
    what: str = "generate",
) -> StealResult:
    """Run ``submit(engine, chunk)`` (returns a Ray ref) for every chunk, each engine pulling the next
    chunk from the queue when its previous call returns; returns every chunk's output in chunk order.

    ``infos(engine)`` names an engine in errors; ``on_dead(engine, err)`` restarts a dead one (it may
    raise to give up), after which the engine takes its lost chunk again first.
    """
    import ray
    from ray.exceptions import RayActorError

    queue = deque(range(len(chunks)))
    outputs: list[Any] = [None] * len(chunks)
    runs: list[ChunkRun] = []
    inflight: dict[Any, tuple[int, int, float]] = {}  # ref -> (engine, chunk index, submitted)

    def start(engine: int) -> None:
        if queue:
            k = queue.popleft()
            inflight[submit(engine, chunks[k])] = (engine, k, time.monotonic())

    for engine in range(min(num_engines, len(chunks))):
        start(engine)
    while inflight:
        now = time.monotonic()
        budget = min(sub + timeout_s for _, _, sub in inflight.values()) - now
        ready, _ = ray.wait(list(inflight), num_returns=1, timeout=max(budget, 0.0))
        if not ready:
            late = [infos(e) for e, _, sub in inflight.values() if sub + timeout_s <= time.monotonic()]
            late = late or [infos(e) for e, _, _ in inflight.values()]
            raise CallTimeout(
                f"{what}: no answer at step {step} within {timeout_s:g} s (ray.call_timeout_s) from "
                + ", ".join(map(str, late)), actor=late[0], step=step,
            )
        ref = ready[0]
        engine, k, submitted = inflight.pop(ref)
        try:
            outputs[k] = ray.get(ref)
        except RayActorError as err:
            runs.append(ChunkRun(k, engine, submitted, time.monotonic(), ok=False))
            dead = ActorDied(f"{what}: {infos(engine)} died at step {step}: {err}", actor=infos(engine), step=step)
            on_dead(engine, dead)
            queue.appendleft(k)
            start(engine)
            continue
        except Exception as err:
            err.add_note(f"rlkit: {what} failed on {infos(engine)} at step {step}")
            raise
        runs.append(ChunkRun(k, engine, submitted, time.monotonic(), ok=True))
        start(engine)
    return StealResult(outputs=outputs, runs=runs)
