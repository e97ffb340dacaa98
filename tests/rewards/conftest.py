"""Fixtures for reward tests: a shared worker pool, the recorded Lean REPL replies, a replay REPL."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from rlkit.rewards.modules import ModuleSource
from rlkit.rewards.pool import RewardPool

HERE = Path(__file__).resolve().parent
LEAN_FIXTURES = HERE.parent / "fixtures" / "lean" / "fixtures.jsonl"
REPLAY = HERE / "lean_replay.py"


@pytest.fixture(scope="session")
def pool():
    """Two workers that also load ``reward_helpers`` (rewards that sleep, crash, raise)."""
    with RewardPool(workers=2, modules=[ModuleSource("reward_helpers")]) as p:
        yield p


@pytest.fixture(scope="session")
def lean_fixtures() -> dict[str, dict]:
    """The recorded REPL request/reply pairs by id."""
    lines = LEAN_FIXTURES.read_text(encoding="utf-8").splitlines()
    return {f["id"]: f for f in map(json.loads, lines)}


@pytest.fixture
def replay(tmp_path):
    """``make(entries, default=None) -> (repl_cmd, log_path)`` for a replay REPL process."""
    counter = iter(range(1000))

    def make(entries: list[dict], *, default: dict | None = None) -> tuple[list[str], Path]:
        n = next(counter)
        log = tmp_path / f"replay{n}.log"
        script = {"entries": entries, "log": str(log)}
        if default is not None:
            script["default"] = default
        path = tmp_path / f"replay{n}.json"
        path.write_text(json.dumps(script, ensure_ascii=False), encoding="utf-8")
        return [sys.executable, str(REPLAY), str(path)], log

    return make
