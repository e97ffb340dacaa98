"""Helpers shared by several test modules (importable as ``testkit``: tests/ is on sys.path via its conftest)."""

from __future__ import annotations

import os
import signal
import subprocess
import time


class GradientRecorder:
    """Stands in for the optimizer: ``step()`` gathers every parameter's full gradient instead of applying it."""

    def __init__(self, policy, rank: int) -> None:
        self.policy = policy  # parameters looked up at each step: FSDP2 may swap them in at its lazy init
        self.rank, self.grads = rank, []

    @property
    def named(self) -> list:
        return list(self.policy.named_parameters())

    def step(self) -> None:
        grads = {}
        for name, p in self.named:  # full_tensor() is a collective: every rank, same order
            g = p.grad.full_tensor() if hasattr(p.grad, "full_tensor") else p.grad
            grads[name] = g.detach().clone()
        self.grads.append(grads if self.rank == 0 else None)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for _, p in self.named:
            p.grad = None


def kill_process_group(proc: subprocess.Popen, *, grace_s: float = 30.0) -> None:
    """SIGKILL the process group ``proc`` leads (a run started with ``start_new_session=True``: its driver,
    Ray's processes, engine and learner actors) and wait until no member is left."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        os.killpg(proc.pid, signal.SIGKILL)
        time.sleep(0.5)
