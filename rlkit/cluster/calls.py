"""Remote calls that cannot hang forever and whose errors say who failed, where, and when.

Every ``ray.get`` on a learner or engine call goes through :func:`gather`: it waits
at most ``ray.call_timeout_s``, and an error names the actor, its node (ip and
Ray node id) and the training step (DESIGN.md "Beyond one host").
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

# After one call fails, how long to wait for the others before reporting: when a
# learner rank dies its peers fail too (a broken collective); the dead one is the story.
_SETTLE_S = 5.0


@dataclass(frozen=True)
class ActorInfo:
    """An actor as errors name it: its role, node and process."""

    name: str  # e.g. "engine 0", "learner rank 1"
    ip: str = "?"
    node_id: str = "?"
    pid: int = 0

    def __str__(self) -> str:
        return f"{self.name} (node {self.ip}, node id {self.node_id[:16]}, pid {self.pid})"


def where() -> dict:
    """Called inside an actor: its node ip, Ray node id and pid (for :class:`ActorInfo`)."""
    import ray

    return {"ip": ray.util.get_node_ip_address(), "node_id": ray.get_runtime_context().get_node_id(), "pid": os.getpid()}


class RemoteCallError(RuntimeError):
    """A learner or engine call that failed or did not answer."""

    def __init__(self, message: str, *, actor: ActorInfo, step: int | None) -> None:
        super().__init__(message)
        self.actor, self.step = actor, step


class ActorDied(RemoteCallError):
    """The actor's process is gone (killed, out of memory, its node lost)."""


class CallTimeout(RemoteCallError):
    """The call did not answer within ``ray.call_timeout_s``."""


def _at(step: int | None) -> str:
    return "during setup" if step is None else f"at step {step}"


def gather(refs: list, *, actors: list[ActorInfo], what: str, timeout_s: float, step: int | None) -> list:
    """``ray.get(refs)`` (``refs[i]`` a call on ``actors[i]``), bounded by ``timeout_s``.

    Raises :class:`ActorDied` naming a dead actor (preferred over its peers' follow-on
    errors), :class:`CallTimeout` naming the actors that did not answer, or the call's
    own exception with a note naming the actor, node and step.
    """
    import ray
    from ray.exceptions import RayActorError

    index = {ref: i for i, ref in enumerate(refs)}
    pending, errors = list(refs), {}
    deadline = time.monotonic() + timeout_s
    while pending:
        budget = deadline - time.monotonic()
        if errors:
            budget = min(budget, _SETTLE_S)
        if budget <= 0:
            break
        ready, pending = ray.wait(pending, num_returns=1, timeout=budget)
        for ref in ready:
            try:
                ray.get(ref)
            except Exception as err:  # noqa: BLE001 - sorted and re-raised below
                errors[index[ref]] = err
        if errors and not ready:
            break
    if errors:
        died = [i for i, err in errors.items() if isinstance(err, RayActorError)]
        i = died[0] if died else min(errors)
        err = errors[i]
        if died:
            raise ActorDied(
                f"{what}: {actors[i]} died {_at(step)}: {_cause(err)}", actor=actors[i], step=step
            ) from err
        err.add_note(f"rlkit: {what} failed on {actors[i]} {_at(step)}")
        raise err
    if pending:
        late = [actors[index[ref]] for ref in pending]
        raise CallTimeout(
            f"{what}: no answer {_at(step)} within {timeout_s:g} s (ray.call_timeout_s) from "
            + ", ".join(map(str, late)), actor=late[0], step=step,
        )
    return ray.get(list(refs))


def _cause(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return " ".join(line.strip() for line in text[:3])[:400] or type(err).__name__
